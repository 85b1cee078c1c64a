//! OpenPGP packet framing for detached signatures, read as GnuPG reads them.
//!
//! Sequoia's parser is strict about MPI encoding: an MPI whose bit-count header
//! does not match its value (leading zero bits counted, or unused bits set)
//! turns the whole signature packet into an unreadable one. GitHub's web-flow
//! signer writes such RSA signatures (a 4096-bit key's signature value that
//! happens to start with zero bits is written as 4096 bits); GnuPG and RNP
//! accept them. The MPIs of a signature packet are outside what the signature
//! hashes, and the number they stand for does not change with its encoding, so
//! rewriting them canonically cannot make a forgery pass: it is the one place
//! we are lenient. Everything else (the hashed and unhashed areas, the hash
//! prefix, every other packet) is passed on byte for byte.

use std::io::Read;

use sequoia_openpgp as openpgp;

/// The binary packets of a signature block, MPIs canonical.
#[derive(Debug)]
pub struct SignatureBlock {
    /// The packets, ready for Sequoia's parser.
    pub binary: Vec<u8>,
    /// How many signature packets the block holds at its top level.
    pub signatures: usize,
    /// How many MPIs were rewritten into their canonical form.
    pub normalised_mpis: usize,
}

/// Reads an armored (or binary) detached signature into packets whose MPIs are
/// canonical. Errors say what is wrong with the framing.
pub fn read_signature_block(data: &[u8]) -> Result<SignatureBlock, String> {
    let binary = dearmor(data)?;
    let mut out = Vec::with_capacity(binary.len());
    let mut signatures = 0;
    let mut normalised_mpis = 0;
    let mut rest = &binary[..];
    while !rest.is_empty() {
        let header = match PacketHeader::parse(rest) {
            Some(h) => h,
            None => return Err("the signature block is not a sequence of OpenPGP packets".into()),
        };
        let Some(body_len) = header.body_len else {
            // A partial or indeterminate length: never used for signatures by any
            // signer; leave it to the parser, as it is.
            if header.tag == 2 {
                signatures += 1;
            }
            out.extend_from_slice(rest);
            break;
        };
        let end = header.header_len.checked_add(body_len).filter(|e| *e <= rest.len());
        let Some(end) = end else {
            return Err(format!("a packet claims {body_len} bytes but only {} follow", rest.len() - header.header_len));
        };
        let body = &rest[header.header_len..end];
        if header.tag == 2 {
            signatures += 1;
            match canonical_signature_body(body) {
                Some((fixed, n)) if n > 0 => {
                    normalised_mpis += n;
                    write_new_header(&mut out, 2, fixed.len());
                    out.extend_from_slice(&fixed);
                }
                _ => out.extend_from_slice(&rest[..end]),
            }
        } else {
            out.extend_from_slice(&rest[..end]);
        }
        rest = &rest[end..];
    }
    Ok(SignatureBlock { binary: out, signatures, normalised_mpis })
}

fn dearmor(data: &[u8]) -> Result<Vec<u8>, String> {
    use openpgp::armor::{Kind, Reader, ReaderMode};
    let trimmed = data.iter().position(|b| !b.is_ascii_whitespace()).map_or(&data[..0], |i| &data[i..]);
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        return Ok(trimmed.to_vec());
    }
    let mut reader = Reader::from_bytes(trimmed, ReaderMode::Tolerant(Some(Kind::Signature)));
    let mut out = Vec::new();
    reader.read_to_end(&mut out).map_err(|e| format!("cannot read the signature's armor: {e}"))?;
    Ok(out)
}

struct PacketHeader {
    tag: u8,
    header_len: usize,
    /// `None` for a partial or indeterminate length.
    body_len: Option<usize>,
}

impl PacketHeader {
    fn parse(b: &[u8]) -> Option<PacketHeader> {
        let ctb = *b.first()?;
        if ctb & 0x80 == 0 {
            return None;
        }
        if ctb & 0x40 != 0 {
            let tag = ctb & 0x3f;
            let o1 = *b.get(1)? as usize;
            let (header_len, body_len) = match o1 {
                0..=191 => (2, Some(o1)),
                192..=223 => (3, Some(((o1 - 192) << 8) + *b.get(2)? as usize + 192)),
                255 => (6, Some(u32::from_be_bytes(b.get(2..6)?.try_into().ok()?) as usize)),
                _ => (2, None),
            };
            Some(PacketHeader { tag, header_len, body_len })
        } else {
            let tag = (ctb >> 2) & 0x0f;
            let (header_len, body_len) = match ctb & 3 {
                0 => (2, Some(*b.get(1)? as usize)),
                1 => (3, Some(u16::from_be_bytes(b.get(1..3)?.try_into().ok()?) as usize)),
                2 => (5, Some(u32::from_be_bytes(b.get(1..5)?.try_into().ok()?) as usize)),
                _ => (1, None),
            };
            Some(PacketHeader { tag, header_len, body_len })
        }
    }
}

fn write_new_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(0xc0 | tag);
    match len {
        0..=191 => out.push(len as u8),
        192..=8383 => {
            let l = len - 192;
            out.push(((l >> 8) + 192) as u8);
            out.push((l & 0xff) as u8);
        }
        _ => {
            out.push(255);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

/// How many MPIs a signature by this public-key algorithm carries (RSA, DSA,
/// ECDSA and legacy EdDSA); `None` for algorithms without MPIs or unknown ones,
/// which are passed on untouched.
fn signature_mpis(pk_algo: u8) -> Option<usize> {
    match pk_algo {
        1 | 3 => Some(1),
        17 | 19 | 22 => Some(2),
        _ => None,
    }
}

/// The body of a v3 or v4 signature packet with its MPIs canonical, and how
/// many were changed. `None` when the body is not one we can walk (it is then
/// passed on as it is, for the parser to judge).
fn canonical_signature_body(body: &[u8]) -> Option<(Vec<u8>, usize)> {
    let version = *body.first()?;
    let (pk_algo, mpis_at) = match version {
        3 => {
            // version, hashed length (5), type, time(4), key id(8), pk algo, hash algo, left 16.
            if *body.get(1)? != 5 {
                return None;
            }
            (*body.get(15)?, 19)
        }
        4 => {
            let hashed = u16::from_be_bytes(body.get(4..6)?.try_into().ok()?) as usize;
            let unhashed_at = 6 + hashed;
            let unhashed = u16::from_be_bytes(body.get(unhashed_at..unhashed_at + 2)?.try_into().ok()?) as usize;
            (*body.get(2)?, unhashed_at + 2 + unhashed + 2)
        }
        _ => return None,
    };
    let count = signature_mpis(pk_algo)?;
    let mut out = body.get(..mpis_at)?.to_vec();
    let mut at = mpis_at;
    let mut changed = 0;
    for _ in 0..count {
        let bits = u16::from_be_bytes(body.get(at..at + 2)?.try_into().ok()?) as usize;
        let len = bits.div_ceil(8);
        let value = body.get(at + 2..at + 2 + len)?;
        let start = value.iter().position(|b| *b != 0).unwrap_or(value.len());
        let value = &value[start..];
        let real_bits = value.first().map_or(0, |b| (value.len() - 1) * 8 + (8 - b.leading_zeros() as usize));
        if real_bits != bits {
            changed += 1;
        }
        out.extend_from_slice(&(real_bits as u16).to_be_bytes());
        out.extend_from_slice(value);
        at += 2 + len;
    }
    out.extend_from_slice(&body[at..]);
    Some((out, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_rsa(mpi: &[u8], bits: u16) -> Vec<u8> {
        let mut body = vec![4, 0x00, 1, 8, 0, 0, 0, 0, 0xab, 0xcd];
        body.extend_from_slice(&bits.to_be_bytes());
        body.extend_from_slice(mpi);
        let mut packet = Vec::new();
        write_new_header(&mut packet, 2, body.len());
        packet.extend_from_slice(&body);
        packet
    }

    #[test]
    fn a_bit_count_that_counts_leading_zeros_is_made_canonical() {
        // 16 bits claimed, the value is 0x00ff: 8 bits.
        let block = read_signature_block(&v4_rsa(&[0x00, 0xff], 16)).expect("framing");
        assert_eq!(block.signatures, 1);
        assert_eq!(block.normalised_mpis, 1);
        assert_eq!(block.binary, v4_rsa(&[0xff], 8));
        // Leading zero bits inside the first byte.
        let block = read_signature_block(&v4_rsa(&[0x01, 0x02], 16)).expect("framing");
        assert_eq!(block.binary, v4_rsa(&[0x01, 0x02], 9));
        // Too few bits claimed for the value (unused bits set).
        let block = read_signature_block(&v4_rsa(&[0xff, 0x02], 9)).expect("framing");
        assert_eq!(block.binary, v4_rsa(&[0xff, 0x02], 16));
    }

    #[test]
    fn canonical_packets_pass_through_unchanged() {
        let packet = v4_rsa(&[0x80, 0x01], 16);
        let block = read_signature_block(&packet).expect("framing");
        assert_eq!(block.normalised_mpis, 0);
        assert_eq!(block.binary, packet);
    }

    #[test]
    fn counts_signature_packets_and_refuses_broken_framing() {
        let mut two = v4_rsa(&[0x80], 8);
        two.extend(v4_rsa(&[0x80], 8));
        assert_eq!(read_signature_block(&two).expect("framing").signatures, 2);
        let mut cut = v4_rsa(&[0x80, 1, 2, 3], 32);
        cut.truncate(cut.len() - 2);
        assert!(read_signature_block(&cut).unwrap_err().contains("claims"));
        assert!(read_signature_block(b"\x01\x02").is_err());
        // A truncated MPI inside a well-framed packet is passed on for the parser to refuse.
        let short = v4_rsa(&[0x80], 16);
        assert_eq!(read_signature_block(&short).expect("framing").binary, short);
    }
}
