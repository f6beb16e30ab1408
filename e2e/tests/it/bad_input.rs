//! Bad requests get a precise, consistent error, and the server keeps serving.

use reqwest::Method;
use stead_api_types::CreatedDevice;

use crate::harness::{Backend, Options, TestServer};
use crate::on_both_backends;

on_both_backends!(bad_bodies_and_routes_get_clear_errors);

async fn bad_bodies_and_routes_get_clear_errors(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        Options::default().env("STEAD_MAX_BODY_BYTES", "4096"),
    )
    .await;
    let acme = server.tenant("Acme").await;
    let c = &acme.admin;
    let json = "application/json";

    // (what, body, content type, status, code, field)
    type Case<'a> = (&'a str, String, &'a str, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "malformed",
            r#"{"name": "x""#.into(),
            json,
            400,
            "invalid_json",
            None,
        ),
        (
            "trailing garbage",
            r#"{"name": "x"} x"#.into(),
            json,
            400,
            "invalid_json",
            None,
        ),
        (
            "wrong type",
            r#"{"name": 42}"#.into(),
            json,
            400,
            "invalid_field",
            Some("name"),
        ),
        (
            "nested wrong type",
            r#"{"name": "x", "label": ["a"]}"#.into(),
            json,
            400,
            "invalid_field",
            Some("label"),
        ),
        (
            "missing field",
            r#"{"label": "x"}"#.into(),
            json,
            400,
            "missing_field",
            Some("name"),
        ),
        (
            "unknown field",
            r#"{"name": "x", "colour": "red"}"#.into(),
            json,
            400,
            "unknown_field",
            Some("colour"),
        ),
        (
            "not an object",
            "[1,2,3]".into(),
            json,
            400,
            "invalid_body",
            None,
        ),
        ("empty body", String::new(), json, 400, "invalid_json", None),
        (
            "not JSON at all",
            "name=x".into(),
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "oversized",
            format!(r#"{{"name": "x", "label": "{}"}}"#, "a".repeat(5000)),
            json,
            413,
            "payload_too_large",
            None,
        ),
    ];
    for (what, body, content_type, status, code, field) in cases {
        let r = c
            .raw(Method::POST, "/api/v1/devices", content_type, body)
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), status, "{what}: {:?}", r.body);
        let err = r.error();
        assert_eq!(err.code, code, "{what}: {:?}", r.body);
        assert_eq!(err.field.as_deref(), field, "{what}");
        assert!(!err.detail.is_empty(), "{what}: a human explanation");
    }

    // Unknown routes and ids: JSON 404s.
    let r = c.get("/api/v1/does-not-exist").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (404, "route_not_found".into())
    );
    let r = c.get("/api/v1/devices/not-a-uuid").await.unwrap();
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found".into()));
    let r = c
        .send(Method::PUT, "/api/v1/devices", Some(&serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 404, "{:?}", r.body);
    assert_eq!(r.code(), "route_not_found");

    // Nothing was created by any of it, and the server still serves.
    let list: stead_api_types::Page<stead_api_types::Device> =
        c.get("/api/v1/devices").await.unwrap().ok().unwrap();
    assert_eq!(list.total, 0);
    c.post("/api/v1/devices", &serde_json::json!({"name": "fine"}))
        .await
        .unwrap()
        .ok::<CreatedDevice>()
        .unwrap();
    assert_eq!(server.client().get("/healthz").await.unwrap().status, 200);
}
