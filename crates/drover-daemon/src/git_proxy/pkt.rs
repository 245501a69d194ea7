//! git's pkt-lines: the push commands of a receive-pack request, and the answers drover makes
//! itself (an `ERR` advertisement, a `report-status` refusing refs).

/// One command of a push: `old new refname`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushCommand {
    pub old: String,
    pub new: String,
    pub refname: String,
}

impl PushCommand {
    /// A delete: the new object id is all zeros.
    pub fn is_delete(&self) -> bool {
        self.new.bytes().all(|b| b == b'0')
    }
}

/// What the start of a receive-pack request holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PushRequest {
    pub commands: Vec<PushCommand>,
    /// The client asked for `side-band-64k` (answers then go in band 1).
    pub side_band: bool,
    /// Whether the flush ending the commands was seen (else the prefix was too short).
    pub complete: bool,
}

/// Parses the commands at the start of a receive-pack body (up to the first flush). `None`: not
/// pkt-lines.
pub fn parse_push(body: &[u8]) -> Option<PushRequest> {
    let mut req = PushRequest::default();
    let mut rest = body;
    let mut first = true;
    loop {
        if rest.len() < 4 {
            return Some(req);
        }
        let len = usize::from_str_radix(std::str::from_utf8(&rest[..4]).ok()?, 16).ok()?;
        if len == 0 {
            req.complete = true;
            return Some(req);
        }
        if len < 4 {
            return None;
        }
        if rest.len() < len {
            return Some(req);
        }
        let mut line = &rest[4..len];
        rest = &rest[len..];
        if first {
            if let Some(nul) = line.iter().position(|b| *b == 0) {
                let caps = String::from_utf8_lossy(&line[nul + 1..]);
                req.side_band = caps.split(' ').any(|c| c.trim() == "side-band-64k");
                line = &line[..nul];
            }
            first = false;
        }
        let text = std::str::from_utf8(line).ok()?.trim_end_matches('\n');
        if text.starts_with("shallow ") || text.starts_with("push-cert") {
            // A signed push's certificate or shallow lines: refused by the caller (no commands
            // it can check), never forwarded unchecked.
            return None;
        }
        let mut parts = text.splitn(3, ' ');
        let (Some(old), Some(new), Some(refname)) = (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        req.commands.push(PushCommand {
            old: old.to_string(),
            new: new.to_string(),
            refname: refname.to_string(),
        });
    }
}

/// One pkt-line holding `data`.
pub fn line(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:04x}", data.len() + 4).into_bytes();
    out.extend_from_slice(data);
    out
}

pub const FLUSH: &[u8] = b"0000";

/// An `info/refs` answer git shows as `fatal: remote error: MESSAGE` (the advertisement's first
/// pkt-line is an `ERR`).
pub fn err_advertisement(message: &str) -> Vec<u8> {
    line(format!("ERR {message}\n").as_bytes())
}

/// A receive-pack result refusing every command: `unpack ok`, then `ng REF REASON` per ref (git
/// prints ` ! [remote rejected] … (REASON)`), in band 1 when the client asked for side-band,
/// with REASON also in band 2 (git prints `remote: REASON`).
pub fn refusal(req: &PushRequest, reason_for: impl Fn(&PushCommand) -> String) -> Vec<u8> {
    let mut status = line(b"unpack ok\n");
    for c in &req.commands {
        status.extend(line(
            format!("ng {} {}\n", c.refname, reason_for(c)).as_bytes(),
        ));
    }
    status.extend_from_slice(FLUSH);
    if !req.side_band {
        return status;
    }
    let mut out = vec![];
    if let Some(c) = req.commands.first() {
        let mut msg = vec![2u8];
        msg.extend_from_slice(format!("{}\n", reason_for(c)).as_bytes());
        out.extend(line(&msg));
    }
    for chunk in status.chunks(65515) {
        let mut band = vec![1u8];
        band.extend_from_slice(chunk);
        out.extend(line(&band));
    }
    out.extend_from_slice(FLUSH);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const Z: &str = "0000000000000000000000000000000000000000";
    const A: &str = "1111111111111111111111111111111111111111";

    #[test]
    fn commands_and_capabilities_parse() {
        let mut body = line(
            format!("{Z} {A} refs/heads/drover/x\0 report-status side-band-64k agent=git/2\n")
                .as_bytes(),
        );
        body.extend(line(format!("{A} {Z} refs/heads/main\n").as_bytes()));
        body.extend_from_slice(FLUSH);
        body.extend_from_slice(b"PACK....");
        let req = parse_push(&body).unwrap();
        assert!(req.complete && req.side_band);
        assert_eq!(req.commands.len(), 2);
        assert_eq!(req.commands[0].refname, "refs/heads/drover/x");
        assert!(!req.commands[0].is_delete());
        assert!(req.commands[1].is_delete());
        let cut = parse_push(&body[..10]).unwrap();
        assert!(!cut.complete);
        assert!(parse_push(b"zzzz").is_none());
    }

    #[test]
    fn a_refusal_is_a_report_status() {
        let req = PushRequest {
            commands: vec![PushCommand {
                old: A.into(),
                new: A.into(),
                refname: "refs/heads/main".into(),
            }],
            side_band: false,
            complete: true,
        };
        let out = refusal(&req, |_| "drover: no".into());
        assert_eq!(
            out,
            b"000eunpack ok\n0022ng refs/heads/main drover: no\n0000".to_vec()
        );
        assert_eq!(err_advertisement("x"), b"000aERR x\n".to_vec());
    }
}
