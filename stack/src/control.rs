//! The control protocol between the daemon and its clients (the `ustack` CLI, later the shim).
//!
//! Transport: one AF_UNIX SOCK_SEQPACKET connection per client to the daemon's socket path;
//! every request is one message and gets exactly one response message. This module is only the
//! message format (no I/O), so both ends and the tests share one definition.
//!
//! Encoding: UTF-8 text, first line is the verb; a response's first line is `ok` or
//! `error <message>`, followed by verb-specific lines. Text keeps `socat`-level debugging
//! possible; the data path never goes through here.

use std::fmt;

/// Where the daemon listens unless `--socket` or `USTACK_SOCKET` says otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/ustack/ustackd.sock";

/// Environment variable that overrides the socket path for the daemon and every client.
pub const SOCKET_ENV: &str = "USTACK_SOCKET";

/// Largest message either side sends; larger ones are refused.
pub const MAX_MESSAGE_LEN: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// All counters, by stable snake_case name.
    Stats,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Stats(Vec<(String, u64)>),
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    NotUtf8,
    Empty,
    UnknownVerb(String),
    BadLine(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotUtf8 => write!(f, "message is not UTF-8"),
            DecodeError::Empty => write!(f, "empty message"),
            DecodeError::UnknownVerb(v) => write!(f, "unknown request '{v}'"),
            DecodeError::BadLine(l) => write!(f, "malformed line '{l}'"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Stats => b"stats\n".to_vec(),
        }
    }

    pub fn decode(message: &[u8]) -> Result<Request, DecodeError> {
        let text = std::str::from_utf8(message).map_err(|_| DecodeError::NotUtf8)?;
        let verb = text.lines().next().ok_or(DecodeError::Empty)?.trim();
        match verb {
            "stats" => Ok(Request::Stats),
            "" => Err(DecodeError::Empty),
            other => Err(DecodeError::UnknownVerb(truncate(other))),
        }
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut text = String::new();
        match self {
            Response::Stats(counters) => {
                text.push_str("ok\n");
                for (name, value) in counters {
                    text.push_str(&format!("{name} {value}\n"));
                }
            }
            Response::Error(message) => {
                text.push_str("error ");
                text.push_str(&message.replace('\n', " "));
                text.push('\n');
            }
        }
        text.into_bytes()
    }

    /// Decodes a response to `request` (the verb decides the body's shape).
    pub fn decode(request: &Request, message: &[u8]) -> Result<Response, DecodeError> {
        let text = std::str::from_utf8(message).map_err(|_| DecodeError::NotUtf8)?;
        let mut lines = text.lines();
        let status = lines.next().ok_or(DecodeError::Empty)?;
        if let Some(message) = status.strip_prefix("error ") {
            return Ok(Response::Error(message.to_string()));
        }
        if status != "ok" {
            return Err(DecodeError::BadLine(truncate(status)));
        }
        match request {
            Request::Stats => {
                let mut counters = Vec::new();
                for line in lines {
                    let (name, value) = line
                        .split_once(' ')
                        .and_then(|(n, v)| Some((n, v.parse::<u64>().ok()?)))
                        .ok_or_else(|| DecodeError::BadLine(truncate(line)))?;
                    counters.push((name.to_string(), value));
                }
                Ok(Response::Stats(counters))
            }
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_round_trip() {
        assert_eq!(Request::decode(&Request::Stats.encode()), Ok(Request::Stats));
        let response = Response::Stats(vec![("frames_in".into(), 3), ("ipv4_bad_checksum".into(), 1)]);
        assert_eq!(
            Response::decode(&Request::Stats, &response.encode()),
            Ok(response)
        );
        let error = Response::Error("no\nway".into());
        assert_eq!(
            Response::decode(&Request::Stats, &error.encode()),
            Ok(Response::Error("no way".into()))
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(Request::decode(b""), Err(DecodeError::Empty));
        assert_eq!(Request::decode(&[0xff, 0xfe]), Err(DecodeError::NotUtf8));
        assert!(matches!(Request::decode(b"reboot\n"), Err(DecodeError::UnknownVerb(_))));
        assert!(Response::decode(&Request::Stats, b"ok\nframes_in x\n").is_err());
        assert!(Response::decode(&Request::Stats, b"maybe\n").is_err());
    }
}
