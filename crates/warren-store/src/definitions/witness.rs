//! The definition store's generation, written beside it after each flush: if the store
//! later opens at an older generation, it lost changes it had made durable.
//!
//! Layout: `generation:u64 | crc32c:u32`, big-endian, written in place and synced (a
//! 12-octet write does not tear across sectors).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Record `generation` in `path`, durably.
pub fn write_witness(path: &Path, generation: u64) -> io::Result<()> {
    let mut raw = generation.to_be_bytes().to_vec();
    raw.extend_from_slice(&crc32c::crc32c(&raw).to_be_bytes());
    let mut file = File::create(path)?;
    file.write_all(&raw)?;
    file.sync_data()
}

/// The recorded generation; `None` if missing or unreadable.
#[must_use]
pub fn read_witness(path: &Path) -> Option<u64> {
    let raw = fs::read(path).ok()?;
    let (value, crc) = (raw.get(..8)?, raw.get(8..12)?);
    if raw.len() != 12 || crc32c::crc32c(value).to_be_bytes() != crc {
        return None;
    }
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        assert_eq!(read_witness(&path), None);
        write_witness(&path, 42).unwrap();
        assert_eq!(read_witness(&path), Some(42));
        let mut raw = fs::read(&path).unwrap();
        raw[3] ^= 1;
        fs::write(&path, raw).unwrap();
        assert_eq!(read_witness(&path), None);
    }
}
