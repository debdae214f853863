//! mbox files (mboxrd, as lore serves them) and single mails.

use std::io::{self, Read, Write};

/// Splits an mbox into raw mails, undoing mboxrd `>From ` quoting. A file
/// that does not start with a `From ` line is one mail (an `.eml`).
pub fn read_mbox(data: &[u8]) -> Vec<Vec<u8>> {
    if !data.starts_with(b"From ") {
        return if data.iter().all(u8::is_ascii_whitespace) {
            Vec::new()
        } else {
            vec![data.to_vec()]
        };
    }
    let mut mails = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut prev_blank = true;
    for line in data.split_inclusive(|&b| b == b'\n') {
        if prev_blank && line.starts_with(b"From ") {
            if let Some(m) = current.take() {
                mails.push(finish(m));
            }
            current = Some(Vec::new());
            prev_blank = false;
            continue;
        }
        prev_blank = line == b"\n" || line == b"\r\n";
        let Some(m) = current.as_mut() else { continue };
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        if quotes > 0 && line[quotes..].starts_with(b"From ") {
            m.extend_from_slice(&line[1..]);
        } else {
            m.extend_from_slice(line);
        }
    }
    if let Some(m) = current {
        mails.push(finish(m));
    }
    mails
}

/// Drops the blank line that separates a mail from the next `From ` line.
fn finish(mut m: Vec<u8>) -> Vec<u8> {
    if m.ends_with(b"\n\n") {
        m.pop();
    }
    m
}

/// Reads a gzip-compressed mbox (`t.mbox.gz`) of at most `max` bytes
/// uncompressed.
pub fn read_mbox_gz(gz: &[u8], max: u64) -> io::Result<Vec<Vec<u8>>> {
    let mut data = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .take(max + 1)
        .read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("mbox is larger than {max} bytes uncompressed"),
        ));
    }
    Ok(read_mbox(&data))
}

/// Writes mails as mboxrd: `From ` lines in bodies get one more `>`.
pub fn write_mboxrd<W: Write>(mails: &[&[u8]], mut w: W) -> io::Result<()> {
    for mail in mails {
        w.write_all(b"From mboxrd@z Thu Jan  1 00:00:00 1970\n")?;
        for line in mail.split_inclusive(|&b| b == b'\n') {
            let quotes = line.iter().take_while(|&&b| b == b'>').count();
            if line[quotes..].starts_with(b"From ") {
                w.write_all(b">")?;
            }
            w.write_all(line)?;
        }
        if !mail.ends_with(b"\n") {
            w.write_all(b"\n")?;
        }
        w.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mboxrd_round_trips_from_lines() {
        let a: &[u8] = b"Subject: a\n\nFrom the start\n>From quoted\nend\n";
        let b: &[u8] = b"Subject: b\n\nbody\n";
        let mut out = Vec::new();
        write_mboxrd(&[a, b], &mut out).unwrap();
        assert!(out.windows(13).any(|w| w == b"\n>From the st"));
        assert!(out.windows(14).any(|w| w == b"\n>>From quoted"));
        assert_eq!(read_mbox(&out), vec![a.to_vec(), b.to_vec()]);
    }

    #[test]
    fn a_file_without_from_line_is_one_mail() {
        assert_eq!(read_mbox(b"Subject: x\n\ny\n").len(), 1);
        assert!(read_mbox(b"\n\n").is_empty());
    }
}
