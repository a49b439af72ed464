//! Just enough of the pcap format to answer "what bytes crossed this wire": the classic libpcap
//! file (what `tcpdump -w` writes) with Ethernet frames, IPv4 and TCP. Anything else (ARP, IPv6,
//! UDP, fragments) is skipped. A file still being written may end mid-record; that record is
//! ignored, so a capture can be read while it runs.
//!
//! Written here rather than pulled in: the format is 40 lines of parsing, and tests need the
//! TCP payload per direction, not a dissector.

use std::net::{Ipv4Addr, SocketAddrV4};

/// One captured TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub seq: u32,
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10).
    pub flags: u8,
    pub payload: Vec<u8>,
}

impl Segment {
    pub const SYN: u8 = 0x02;

    pub fn is_syn(&self) -> bool {
        self.flags & Self::SYN != 0
    }
}

/// The bytes one side of a TCP connection sent, in sequence order, each byte once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub bytes: Vec<u8>,
}

/// The TCP segments of a capture, in capture order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    pub segments: Vec<Segment>,
}

impl Traffic {
    /// Each direction of each connection, in the order first seen, reassembled by sequence
    /// number (retransmitted bytes appear once). A new SYN on a used address pair starts a new
    /// stream.
    pub fn streams(&self) -> Vec<Stream> {
        // (src, dst, base sequence number, segments)
        let mut flows: Vec<(SocketAddrV4, SocketAddrV4, Option<u32>, Vec<&Segment>)> = Vec::new();
        for segment in &self.segments {
            let current = flows
                .iter()
                .rposition(|(src, dst, _, _)| *src == segment.src && *dst == segment.dst);
            let index = match current {
                Some(i) if !(segment.is_syn() && flows[i].2.is_some()) => i,
                _ => {
                    flows.push((segment.src, segment.dst, None, Vec::new()));
                    flows.len() - 1
                }
            };
            let flow = &mut flows[index];
            if segment.is_syn() {
                flow.2 = Some(segment.seq.wrapping_add(1));
            }
            if !segment.payload.is_empty() {
                flow.3.push(segment);
            }
        }
        flows
            .into_iter()
            .map(|(src, dst, base, mut segments)| {
                let base = base
                    .or_else(|| segments.first().map(|s| s.seq))
                    .unwrap_or(0);
                segments.sort_by_key(|s| s.seq.wrapping_sub(base));
                let mut bytes = Vec::new();
                for segment in segments {
                    let offset = segment.seq.wrapping_sub(base) as usize;
                    // Skip what an earlier segment already delivered; a gap (bytes never
                    // captured) is closed up rather than filled.
                    let skip = bytes.len().saturating_sub(offset);
                    if skip < segment.payload.len() {
                        bytes.extend_from_slice(&segment.payload[skip..]);
                    }
                }
                Stream { src, dst, bytes }
            })
            .filter(|stream| !stream.bytes.is_empty())
            .collect()
    }

    /// The bytes of every stream, one after another.
    pub fn payload(&self) -> Vec<u8> {
        self.payload_where(|_| true)
    }

    /// The bytes of the streams `keep` accepts, one after another.
    pub fn payload_where(&self, keep: impl Fn(&Stream) -> bool) -> Vec<u8> {
        self.streams()
            .into_iter()
            .filter(|s| keep(s))
            .flat_map(|s| s.bytes)
            .collect()
    }

    /// What was sent to `port` (client to server, for a server port).
    pub fn payload_to_port(&self, port: u16) -> Vec<u8> {
        self.payload_where(|s| s.dst.port() == port)
    }

    /// What was sent from `port` (server to client, for a server port).
    pub fn payload_from_port(&self, port: u16) -> Vec<u8> {
        self.payload_where(|s| s.src.port() == port)
    }

    /// Whether any one stream contains `needle`.
    pub fn contains(&self, needle: &[u8]) -> bool {
        self.streams().iter().any(|s| contains(&s.bytes, needle))
    }
}

/// Whether `haystack` contains `needle` (an empty needle is everywhere).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

const LINKTYPE_ETHERNET: u32 = 1;

/// Parses a pcap file's TCP-over-IPv4 segments. Errors only on a file that is not pcap over
/// Ethernet; an empty or truncated file yields what it holds.
pub fn parse(file: &[u8]) -> Result<Traffic, String> {
    let mut traffic = Traffic::default();
    if file.len() < 24 {
        // tcpdump has not written its header yet.
        return Ok(traffic);
    }
    let magic = [file[0], file[1], file[2], file[3]];
    // Microsecond (a1b2c3d4) or nanosecond (a1b23c4d) timestamps, either byte order.
    let little = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(format!("not a pcap file (magic {magic:02x?})")),
    };
    let u32_at = |at: usize| {
        let bytes = [file[at], file[at + 1], file[at + 2], file[at + 3]];
        if little {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        }
    };
    let link_type = u32_at(20) & 0x0fff_ffff;
    if link_type != LINKTYPE_ETHERNET {
        return Err(format!("link type {link_type}, expected Ethernet (1)"));
    }
    let mut at = 24;
    while at + 16 <= file.len() {
        let captured = u32_at(at + 8) as usize;
        let start = at + 16;
        let Some(frame) = file.get(start..start + captured) else {
            break; // the last record is still being written
        };
        if let Some(segment) = tcp_segment(frame) {
            traffic.segments.push(segment);
        }
        at = start + captured;
    }
    Ok(traffic)
}

/// The TCP segment in an Ethernet frame, if it carries one over IPv4 (unfragmented).
fn tcp_segment(frame: &[u8]) -> Option<Segment> {
    let be16 = |b: &[u8], at: usize| Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]));
    let mut ethertype = be16(frame, 12)?;
    let mut ip_start = 14;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        // VLAN tags
        ethertype = be16(frame, ip_start + 2)?;
        ip_start += 4;
    }
    if ethertype != 0x0800 {
        return None;
    }
    let ip = frame.get(ip_start..)?;
    let header_len = usize::from(*ip.first()? & 0x0f) * 4;
    let total_len = usize::from(be16(ip, 2)?);
    let fragment = be16(ip, 6)? & 0x3fff; // more-fragments flag and offset
    if *ip.first()? >> 4 != 4 || *ip.get(9)? != 6 || fragment != 0 || header_len < 20 {
        return None;
    }
    // Ethernet pads short frames: the IP length, not the frame, says where the packet ends.
    // (An offloaded super-packet may say 0: then it runs to the end of the frame.)
    let end = if total_len == 0 {
        ip.len()
    } else {
        total_len.min(ip.len())
    };
    let address = |at: usize| {
        Some(Ipv4Addr::new(
            *ip.get(at)?,
            *ip.get(at + 1)?,
            *ip.get(at + 2)?,
            *ip.get(at + 3)?,
        ))
    };
    let (src_ip, dst_ip) = (address(12)?, address(16)?);
    let tcp = ip.get(header_len..end)?;
    let data_offset = usize::from(*tcp.get(12)? >> 4) * 4;
    let seq = u32::from_be_bytes([*tcp.get(4)?, *tcp.get(5)?, *tcp.get(6)?, *tcp.get(7)?]);
    Some(Segment {
        src: SocketAddrV4::new(src_ip, be16(tcp, 0)?),
        dst: SocketAddrV4::new(dst_ip, be16(tcp, 2)?),
        seq,
        flags: *tcp.get(13)?,
        payload: tcp.get(data_offset..)?.to_vec(),
    })
}
