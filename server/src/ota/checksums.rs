//! The checksums of an image, in every algorithm ThingsBoard's device SDKs verify, computed while
//! it streams in: two blocking threads fed through bounded channels (so a slow hash slows the
//! upload rather than growing a queue), off the async executor. One reads through every digest
//! and MURMUR3_32, the other computes MURMUR3_128 (the `murmur3` crate hashes a reader whole).

use std::collections::BTreeMap;
use std::io::Read;

use bytes::Bytes;
use md5::Md5;
use sha2::{Digest, Sha256, Sha384, Sha512};
use stead_api_types::ChecksumAlgorithm;
use tokio::sync::mpsc;

/// Chunks queued per hashing thread.
const QUEUE: usize = 8;

/// Reads the chunks sent to it, as one byte stream; the end of the channel is the end of file.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Updates the digests with every byte read through it.
struct Tee<R> {
    inner: R,
    sha256: Sha256,
    sha384: Sha384,
    sha512: Sha512,
    md5: Md5,
    crc32: crc32fast::Hasher,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = &buf[..n];
        self.sha256.update(read);
        self.sha384.update(read);
        self.sha512.update(read);
        self.md5.update(read);
        self.crc32.update(read);
        Ok(n)
    }
}

/// An integer checksum as ThingsBoard's SDKs write it: the integer's hex digits without leading
/// zeros (padded to whole bytes), byte order reversed, lowercase; so the little-endian bytes
/// without the high zero bytes, at least one byte.
fn sdk_hex(le: &[u8]) -> String {
    let used = le.iter().rposition(|b| *b != 0).map_or(1, |i| i + 1);
    hex::encode(&le[..used])
}

pub struct Checksummer {
    senders: [mpsc::Sender<Bytes>; 2],
    digests: tokio::task::JoinHandle<std::io::Result<BTreeMap<ChecksumAlgorithm, String>>>,
    murmur128: tokio::task::JoinHandle<std::io::Result<u128>>,
}

impl Checksummer {
    pub fn start() -> Checksummer {
        let (tx_a, rx_a) = mpsc::channel(QUEUE);
        let (tx_b, rx_b) = mpsc::channel(QUEUE);
        let digests = tokio::task::spawn_blocking(move || {
            let mut tee = Tee {
                inner: ChannelReader {
                    rx: rx_a,
                    current: Bytes::new(),
                },
                sha256: Sha256::new(),
                sha384: Sha384::new(),
                sha512: Sha512::new(),
                md5: Md5::new(),
                crc32: crc32fast::Hasher::new(),
            };
            let m32 = murmur3::murmur3_32(&mut tee, 0)?;
            Ok(BTreeMap::from([
                (
                    ChecksumAlgorithm::Sha256,
                    hex::encode(tee.sha256.finalize()),
                ),
                (
                    ChecksumAlgorithm::Sha384,
                    hex::encode(tee.sha384.finalize()),
                ),
                (
                    ChecksumAlgorithm::Sha512,
                    hex::encode(tee.sha512.finalize()),
                ),
                (ChecksumAlgorithm::Md5, hex::encode(tee.md5.finalize())),
                (
                    ChecksumAlgorithm::Crc32,
                    sdk_hex(&tee.crc32.finalize().to_le_bytes()),
                ),
                (ChecksumAlgorithm::Murmur3_32, sdk_hex(&m32.to_le_bytes())),
            ]))
        });
        let murmur128 = tokio::task::spawn_blocking(move || {
            let mut reader = ChannelReader {
                rx: rx_b,
                current: Bytes::new(),
            };
            murmur3::murmur3_x64_128(&mut reader, 0)
        });
        Checksummer {
            senders: [tx_a, tx_b],
            digests,
            murmur128,
        }
    }

    /// Hands a chunk to both threads, waiting while they are behind.
    pub async fn feed(&self, chunk: Bytes) {
        for tx in &self.senders {
            // A thread that ended early (it cannot: it reads until the channel closes) drops it.
            let _ = tx.send(chunk.clone()).await;
        }
    }

    /// Every checksum, once the last chunk was fed.
    pub async fn finish(self) -> anyhow::Result<BTreeMap<ChecksumAlgorithm, String>> {
        drop(self.senders);
        let mut all = self.digests.await??;
        let m128 = self.murmur128.await??;
        all.insert(ChecksumAlgorithm::Murmur3_128, sdk_hex(&m128.to_le_bytes()));
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn of(parts: &[&'static [u8]]) -> BTreeMap<ChecksumAlgorithm, String> {
        let c = Checksummer::start();
        for p in parts {
            c.feed(Bytes::from_static(p)).await;
        }
        c.finish().await.unwrap()
    }

    /// Known answers from Python, written as ThingsBoard's SDK verifies them (`sdk_utils.py`:
    /// `zlib.crc32`, `mmh3.hash`/`hash128` unsigned, hex digits reversed by byte).
    #[tokio::test]
    async fn checksums_as_the_sdk_verifies_them() {
        let all = of(&[b"ste", b"ad"]).await;
        assert_eq!(all[&ChecksumAlgorithm::Crc32], "a5ac28e4");
        assert_eq!(all[&ChecksumAlgorithm::Murmur3_32], "3b54f1db");
        assert_eq!(
            all[&ChecksumAlgorithm::Murmur3_128],
            "29f9068a8c1faab8f6bd4df4f27dc43e"
        );
        assert_eq!(
            all[&ChecksumAlgorithm::Md5],
            "fc7696ea1bb702bb4246390ed70ef23c"
        );
        assert_eq!(
            all[&ChecksumAlgorithm::Sha256],
            hex::encode(Sha256::digest(b"stead"))
        );
        assert_eq!(all.len(), 7);
        // A high zero byte is left out, as the SDK's formatting drops it.
        assert_eq!(of(&[b"fw-299"]).await[&ChecksumAlgorithm::Crc32], "9432ab");
        assert_eq!(
            of(&[b"fw-", b"366"]).await[&ChecksumAlgorithm::Murmur3_32],
            "26b637"
        );
        assert_eq!(sdk_hex(&[0, 0, 0, 0]), "00");
    }
}
