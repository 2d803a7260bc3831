//! The ID3 tag that opens every packed-audio segment.
//!
//! RFC 8216 §3.4: "Each Packed Audio Segment MUST signal the timestamp of its first sample with an
//! ID3 Private frame (PRIV) tag ... The PRIV frame's owner identifier MUST be
//! `com.apple.streaming.transportStreamTimestamp`" holding a 33-bit MPEG-2 PTS in an 8-octet
//! big-endian field, the upper 31 bits zero. The tag must be the first thing in the segment.

const OWNER: &[u8] = b"com.apple.streaming.transportStreamTimestamp\0";

/// Size in bytes of the tag [`timestamp_tag`] writes.
pub const TAG_LEN: usize = 10 + 10 + OWNER.len() + 8;

/// ID3v2.4 tag with one PRIV frame carrying `pts_90khz` (taken modulo 2^33, as MPEG-2 does).
pub fn timestamp_tag(pts_90khz: u64) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    let frame_len = OWNER.len() + 8;
    let body_len = 10 + frame_len;
    tag[..5].copy_from_slice(b"ID3\x04\x00");
    // tag[5] = flags (none); sizes in ID3v2.4 are 28-bit "syncsafe" integers.
    tag[6..10].copy_from_slice(&syncsafe(body_len as u32));
    tag[10..14].copy_from_slice(b"PRIV");
    tag[14..18].copy_from_slice(&syncsafe(frame_len as u32));
    // tag[18..20] = frame flags (none).
    tag[20..20 + OWNER.len()].copy_from_slice(OWNER);
    let pts = pts_90khz & ((1 << 33) - 1);
    tag[20 + OWNER.len()..].copy_from_slice(&pts.to_be_bytes());
    tag
}

fn syncsafe(n: u32) -> [u8; 4] {
    debug_assert!(n < 1 << 28);
    [
        ((n >> 21) & 0x7f) as u8,
        ((n >> 14) & 0x7f) as u8,
        ((n >> 7) & 0x7f) as u8,
        (n & 0x7f) as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_the_tag() {
        let tag = timestamp_tag(614_400);
        assert_eq!(&tag[..3], b"ID3");
        assert_eq!(tag[3], 4);
        // body = PRIV header (10) + owner (45) + 8
        assert_eq!(tag[9] as usize + ((tag[8] as usize) << 7), 63);
        assert_eq!(&tag[10..14], b"PRIV");
        assert_eq!(tag[17], 53);
        assert_eq!(&tag[20..65], OWNER);
        assert_eq!(u64::from_be_bytes(tag[65..73].try_into().unwrap()), 614_400);
        assert_eq!(TAG_LEN, 73);
    }

    #[test]
    fn pts_wraps_at_33_bits() {
        let tag = timestamp_tag((1 << 33) + 5);
        assert_eq!(u64::from_be_bytes(tag[65..73].try_into().unwrap()), 5);
    }
}
