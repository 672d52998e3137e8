//! Minimal pcap (libpcap classic format) reader and writer: Ethernet link type, micro- or
//! nanosecond timestamps, either byte order. Files written here open in tcpdump/Wireshark.
//! Used by the golden scenarios (`vswitch-tests`) and `vswitch trace --pcap`. [`parse`]
//! never panics on untrusted bytes: a short or inconsistent file is an error.

use std::io::{self, Read, Write};
use std::path::Path;

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Timestamp in nanoseconds (as stored in the file).
    pub ts_ns: u64,
    /// Frame bytes (Ethernet).
    pub data: Vec<u8>,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Parse a pcap file's bytes.
pub fn parse(bytes: &[u8]) -> io::Result<Vec<Record>> {
    if bytes.len() < 24 {
        return Err(bad("pcap shorter than its global header".into()));
    }
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (le, nanos) = match magic {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        m => return Err(bad(format!("not a pcap file (magic {m:#x})"))),
    };
    let u32_at = |b: &[u8], o: usize| -> u32 {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = u32_at(bytes, 20);
    if linktype != 1 {
        return Err(bad(format!("link type {linktype} is not Ethernet (1)")));
    }
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let sec = u64::from(u32_at(bytes, off));
        let frac = u64::from(u32_at(bytes, off + 4));
        let incl = u32_at(bytes, off + 8) as usize;
        off += 16;
        let Some(data) = bytes.get(off..off + incl) else {
            return Err(bad(format!("record at byte {off} runs past the end")));
        };
        out.push(Record {
            ts_ns: sec * 1_000_000_000 + if nanos { frac } else { frac * 1000 },
            data: data.to_vec(),
        });
        off += incl;
    }
    Ok(out)
}

/// Read a pcap file.
pub fn read(path: &Path) -> io::Result<Vec<Record>> {
    let mut b = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut b)?;
    parse(&b).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Serialise records as a microsecond-resolution pcap.
pub fn to_bytes(records: &[Record]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&0i32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&65535u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    for r in records {
        let sec = (r.ts_ns / 1_000_000_000) as u32;
        let usec = ((r.ts_ns % 1_000_000_000) / 1000) as u32;
        v.extend_from_slice(&sec.to_le_bytes());
        v.extend_from_slice(&usec.to_le_bytes());
        v.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
        v.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
        v.extend_from_slice(&r.data);
    }
    v
}

/// Write a pcap file.
pub fn write(path: &Path, records: &[Record]) -> io::Result<()> {
    std::fs::File::create(path)?.write_all(&to_bytes(records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let r = vec![
            Record {
                ts_ns: 1_500_000_000,
                data: vec![1, 2, 3],
            },
            Record {
                ts_ns: 2_000_001_000,
                data: vec![4; 60],
            },
        ];
        assert_eq!(parse(&to_bytes(&r)).unwrap(), r);
        assert!(parse(&[0; 10]).is_err());
    }
}
