//! The pcapng rendering of a port capture (`vswitch ctl capture -w`): a section header
//! block, one interface description block (Ethernet, the capture's snaplen, nanosecond
//! timestamps: `if_tsresol` = 9, `if_name` the port) and one enhanced packet block per
//! captured frame, with
//! - its timestamp (when the switch handled it, ns since the Unix epoch),
//! - `opt_comment`: the switch's decision ([`Decision`]'s text: `drop: arp_spoof`,
//!   `forward: web2`, `flood`, `answered`, `tx`, …), which Wireshark shows as the packet
//!   comment (`frame.comment`),
//! - `epb_flags`: the direction, inbound (received on the port) or outbound (sent out
//!   of it).
//!
//! Written with the `pcap-file` crate, in the machine's byte order.

use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness};
use vswitch::view::capture::{CaptureRecord, CaptureStarted, Direction};

/// `epb_flags` bits 0-1: inbound.
pub const FLAG_INBOUND: u32 = 0b01;
/// `epb_flags` bits 0-1: outbound.
pub const FLAG_OUTBOUND: u32 = 0b10;
/// `if_tsresol` for nanoseconds (10^-9 s).
pub const TSRESOL_NS: u8 = 9;

/// A pcapng file of one port's capture.
pub struct CaptureWriter<W: Write> {
    w: PcapNgWriter<W>,
    frames: u64,
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the section header and the interface of the capture `started` to `out`.
    pub fn new(out: W, started: &CaptureStarted) -> Result<CaptureWriter<W>, String> {
        let shb = SectionHeaderBlock {
            endianness: Endianness::native(),
            options: vec![SectionHeaderOption::UserApplication(Cow::Owned(format!(
                "vswitch {} (ctl capture)",
                env!("CARGO_PKG_VERSION")
            )))],
            ..SectionHeaderBlock::default()
        };
        let mut w = PcapNgWriter::with_section_header(out, shb).map_err(|e| e.to_string())?;
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: started.snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(started.port.clone())),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(format!(
                    "vswitch port {} ({}), frames with the switch's decisions",
                    started.port,
                    started.dir.as_str()
                ))),
                InterfaceDescriptionOption::IfTsResol(TSRESOL_NS),
            ],
        };
        w.write_pcapng_block(idb).map_err(|e| e.to_string())?;
        Ok(CaptureWriter { w, frames: 0 })
    }

    /// Writes one frame.
    pub fn frame(&mut self, r: &CaptureRecord) -> Result<(), String> {
        let flags = match r.dir {
            Direction::Rx => FLAG_INBOUND,
            Direction::Tx => FLAG_OUTBOUND,
        };
        let epb = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(r.at_unix_ns),
            // never shorter than what was kept
            original_len: r
                .orig_len
                .max(u32::try_from(r.frame.len()).unwrap_or(u32::MAX)),
            data: Cow::Borrowed(&r.frame),
            options: vec![
                EnhancedPacketOption::Comment(Cow::Owned(r.decision.to_string())),
                EnhancedPacketOption::Flags(flags),
            ],
        };
        self.w.write_pcapng_block(epb).map_err(|e| e.to_string())?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Flushes what is written so far to the output.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.get_mut().flush()
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.flush()?;
        Ok(self.w.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use vswitch::pipeline::DropReason;
    use vswitch::view::capture::{CaptureDir, Decision};

    fn rec(dir: Direction, decision: Decision, at: u64, frame: Vec<u8>) -> CaptureRecord {
        CaptureRecord {
            at_unix_ns: at,
            port: "web1".into(),
            dir,
            decision,
            orig_len: u32::try_from(frame.len()).unwrap() + 10,
            frame,
        }
    }

    #[test]
    fn frames_carry_time_comment_and_direction() {
        let started = CaptureStarted {
            port: "web1".into(),
            dir: CaptureDir::Both,
            snaplen: 2048,
        };
        let mut w = CaptureWriter::new(Vec::new(), &started).unwrap();
        let at = 1_700_000_000_123_456_789;
        w.frame(&rec(
            Direction::Rx,
            Decision::Drop {
                reason: DropReason::ArpSpoof,
            },
            at,
            vec![0xff; 60],
        ))
        .unwrap();
        w.frame(&rec(Direction::Tx, Decision::Tx, at + 1, vec![1, 2, 3]))
            .unwrap();
        assert_eq!(w.frames(), 2);
        let bytes = w.finish().unwrap();

        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let mut idbs = Vec::new();
        let mut epbs = Vec::new();
        while let Some(b) = r.next_block() {
            match b.unwrap() {
                Block::InterfaceDescription(i) => idbs.push(i.into_owned()),
                Block::EnhancedPacket(e) => epbs.push(e.into_owned()),
                other => panic!("unexpected block {other:?}"),
            }
        }
        assert_eq!(idbs.len(), 1);
        assert_eq!(idbs[0].linktype, DataLink::ETHERNET);
        assert_eq!(idbs[0].snaplen, 2048);
        assert!(idbs[0]
            .options
            .contains(&InterfaceDescriptionOption::IfTsResol(9)));
        assert!(idbs[0]
            .options
            .contains(&InterfaceDescriptionOption::IfName("web1".into())));
        assert_eq!(epbs.len(), 2);
        assert_eq!(epbs[0].timestamp, Duration::from_nanos(at));
        assert_eq!(epbs[0].original_len, 70);
        assert_eq!(&epbs[0].data[..], &[0xff; 60][..]);
        assert_eq!(
            epbs[0].options,
            vec![
                EnhancedPacketOption::Comment("drop: arp_spoof".into()),
                EnhancedPacketOption::Flags(FLAG_INBOUND),
            ]
        );
        assert_eq!(epbs[1].timestamp, Duration::from_nanos(at + 1));
        assert_eq!(&epbs[1].data[..], &[1, 2, 3][..]);
        assert_eq!(
            epbs[1].options,
            vec![
                EnhancedPacketOption::Comment("tx".into()),
                EnhancedPacketOption::Flags(FLAG_OUTBOUND),
            ]
        );
    }
}
