//! pcap (libpcap classic format) files, read and written with the `pcap-file` crate: Ethernet
//! link type only; reads micro- or nanosecond timestamps in either byte order; writes
//! little-endian, microseconds, snaplen 65535. Used by the golden scenarios (`vswitch-tests`)
//! and `vswitch trace --pcap`. [`parse`] never panics on untrusted bytes: a short or
//! inconsistent file is an error. Files written here open in tcpdump/Wireshark.

use std::io;
use std::path::Path;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapParser, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

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
    let (mut rest, parser) =
        PcapParser::new(bytes).map_err(|e| bad(format!("not a pcap file: {e}")))?;
    let linktype = parser.header().datalink;
    if linktype != DataLink::ETHERNET {
        return Err(bad(format!("link type {linktype:?} is not Ethernet (1)")));
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let at = bytes.len() - rest.len();
        let (next, p) = parser
            .next_packet(rest)
            .map_err(|e| bad(format!("record at byte {at}: {e}")))?;
        out.push(Record {
            ts_ns: p.timestamp.as_nanos() as u64,
            data: p.data.into_owned(),
        });
        rest = next;
    }
    Ok(out)
}

/// Read a pcap file.
pub fn read(path: &Path) -> io::Result<Vec<Record>> {
    let b = std::fs::read(path)?;
    parse(&b).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Serialise records as a microsecond-resolution, little-endian pcap.
pub fn to_bytes(records: &[Record]) -> Vec<u8> {
    let header = PcapHeader {
        snaplen: 65535,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
        ..PcapHeader::default()
    };
    let mut w = match PcapWriter::with_header(Vec::new(), header) {
        Ok(w) => w,
        // writing into a Vec cannot fail
        Err(e) => unreachable!("pcap header into a Vec: {e}"),
    };
    for r in records {
        let p = PcapPacket::new(Duration::from_nanos(r.ts_ns), r.data.len() as u32, &r.data);
        if let Err(e) = w.write_packet(&p) {
            // only a frame over the snaplen (65535) is refused; the switch's are smaller
            panic!("pcap record of {} bytes: {e}", r.data.len());
        }
    }
    w.into_writer()
}

/// Write a pcap file.
pub fn write(path: &Path, records: &[Record]) -> io::Result<()> {
    std::fs::write(path, to_bytes(records))
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
        let bytes = to_bytes(&r);
        // the global header the fixtures were written with: LE magic, 2.4, snaplen 65535,
        // Ethernet
        assert_eq!(
            bytes[..24],
            [
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0,
                0, 0
            ]
        );
        assert_eq!(bytes[24..28], 1u32.to_le_bytes());
        assert_eq!(bytes[28..32], 500_000u32.to_le_bytes());
        assert_eq!(parse(&bytes).unwrap(), r);
        assert!(parse(&[0; 10]).is_err());
        assert!(parse(&bytes[..bytes.len() - 1]).is_err());
    }
}
