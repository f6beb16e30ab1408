//! The blob store: large binary objects (OTA images) kept outside the database, streamed in and
//! out, never held whole in memory. A directory (`<data dir>/blobs`) by default; an S3-compatible
//! bucket in production (`STEAD_BLOB_URL=s3://bucket/prefix`), through `object_store`. Objects are
//! addressed by content: `tenants/<tenant>/sha256/<hex>`, so the same image uploaded twice by one
//! tenant is stored once, and one tenant's deletions never touch another's objects.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};

use crate::config::Config;
use crate::ids::TenantId;

/// Parts of an upload in flight at once (each 5 MiB): what bounds an upload's memory.
const PARTS_IN_FLIGHT: usize = 2;

/// `STEAD_BLOB_URL`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobUrl {
    pub bucket: String,
    pub prefix: String,
}

/// `STEAD_BLOB_URL=file:///srv/stead-blobs`: a directory, shared by every node that mounts it
/// (the default directory is each node's own).
pub fn directory_of(raw: &str) -> Option<std::path::PathBuf> {
    raw.strip_prefix("file://")
        .filter(|p| p.starts_with('/'))
        .map(std::path::PathBuf::from)
}

impl BlobUrl {
    pub fn parse(raw: &str) -> Result<BlobUrl, String> {
        let rest = raw
            .strip_prefix("s3://")
            .ok_or_else(|| "must start with s3://".to_owned())?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err("names no bucket".into());
        }
        Ok(BlobUrl {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }
}

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// For logs and `stead doctor`: `directory /var/lib/stead/blobs` or `s3://bucket/prefix`.
    pub describe: String,
}

/// What an upload stored.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Where it is (pass to `get` and `delete`).
    pub key: String,
    pub size: u64,
}

/// Why an upload stopped.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading the upload failed: {0}")]
    Body(String),
    #[error("the blob store failed: {0}")]
    Store(#[from] object_store::Error),
}

impl Blobs {
    pub fn from_config(cfg: &Config) -> anyhow::Result<Blobs> {
        let dir = match &cfg.blob_url {
            None => Some(cfg.data_dir.join("blobs")),
            Some(raw) => directory_of(raw),
        };
        if let Some(dir) = dir {
            std::fs::create_dir_all(&dir).map_err(|e| {
                anyhow::anyhow!("creating the blob directory {}: {e}", dir.display())
            })?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
            return Ok(Blobs {
                store: Arc::new(store),
                prefix: String::new(),
                describe: format!("directory {}", dir.display()),
            });
        }
        let raw = cfg.blob_url.as_deref().unwrap_or_default();
        let url = BlobUrl::parse(raw).map_err(|e| anyhow::anyhow!("STEAD_BLOB_URL {e}"))?;
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&url.bucket)
            .build()?;
        Ok(Blobs {
            store: Arc::new(store),
            prefix: url.prefix.clone(),
            describe: format!("s3://{}/{}", url.bucket, url.prefix),
        })
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    /// The key of a tenant's object with this SHA-256.
    pub fn key_of(tenant: TenantId, sha256: &str) -> String {
        format!("tenants/{}/sha256/{sha256}", tenant.0)
    }

    /// Streams `body` into a temporary object, handing every chunk to `inspect` (the caller's
    /// checksums) and refusing more than `limit` bytes. The caller names the final key once it
    /// knows the content (`settle`), or deletes the upload.
    pub async fn upload<S, E, F, Fut>(
        &self,
        tenant: TenantId,
        mut body: S,
        limit: u64,
        mut inspect: F,
    ) -> Result<Stored, UploadError>
    where
        S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
        F: FnMut(Bytes) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let key = format!("tenants/{}/uploads/{}", tenant.0, uuid::Uuid::new_v4());
        let upload = self.store.put_multipart(&self.path(&key)).await?;
        let mut writer = WriteMultipart::new(upload);
        let mut size = 0u64;
        let outcome: Result<(), UploadError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(UploadError::TooLarge { limit });
                }
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                writer.write(&chunk);
                inspect(chunk).await;
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => {
                writer.finish().await?;
                Ok(Stored { key, size })
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, "aborting a refused upload failed");
                }
                Err(e)
            }
        }
    }

    /// Moves an upload to its final key (replacing an identical object already there).
    pub async fn settle(&self, from: &str, to: &str) -> Result<(), object_store::Error> {
        self.store.rename(&self.path(from), &self.path(to)).await
    }

    /// Removes an object; one already gone is no error.
    pub async fn delete(&self, key: &str) -> Result<(), object_store::Error> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The bytes of `range` (or all), as a stream.
    pub async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, object_store::Error>>, object_store::Error> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        Ok(self
            .store
            .get_opts(&self.path(key), options)
            .await?
            .into_stream())
    }

    /// For `/readyz` and `stead doctor`: the store answers (a missing object is an answer).
    pub async fn check(&self) -> Result<(), object_store::Error> {
        match self.store.head(&self.path(".stead-check")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_urls() {
        assert_eq!(
            BlobUrl::parse("s3://firmware/stead/prod/").unwrap(),
            BlobUrl {
                bucket: "firmware".into(),
                prefix: "stead/prod".into()
            }
        );
        assert_eq!(BlobUrl::parse("s3://firmware").unwrap().prefix, "");
        assert!(BlobUrl::parse("s3:///x").is_err());
        assert!(BlobUrl::parse("gs://x").is_err());
    }
}
