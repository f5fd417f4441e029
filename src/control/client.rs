//! The CLI side of the control socket: connect, send one request, read one response.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::api::{
    API_VERSION, ControlError, MAX_RESPONSE_BYTES, Request, RequestEnvelope, Response,
    ResponseEnvelope,
};

/// Default location of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/rustiscsi/control.sock";

/// Default time allowed for an answer (applying a config may open large backstores).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request got no answer from the daemon, or a failure answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached (daemon not running, permissions).
    #[error("cannot reach rustiscsid at {}: {source}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The connection failed or timed out mid-request.
    #[error("talking to rustiscsid at {}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The daemon's answer could not be understood.
    #[error("unexpected answer from rustiscsid: {0}")]
    Protocol(String),
    /// The daemon answered with an error.
    #[error("{0}")]
    Daemon(#[from] ControlError),
}

/// A control-socket client.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client of the socket at `path` with [`DEFAULT_TIMEOUT`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the time allowed for connecting, sending and receiving.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `request` on a new connection and returns the daemon's answer.
    pub fn request(&self, request: Request) -> Result<Response, ClientError> {
        let stream = UnixStream::connect(&self.path).map_err(|source| ClientError::Connect {
            path: self.path.clone(),
            source,
        })?;
        let io_err = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(io_err)?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(io_err)?;
        let env = RequestEnvelope {
            version: API_VERSION,
            request,
        };
        let mut line =
            serde_json::to_vec(&env).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        (&stream).write_all(&line).map_err(io_err)?;
        let mut reader = BufReader::new((&stream).take(MAX_RESPONSE_BYTES as u64 + 1));
        let mut answer = Vec::new();
        reader.read_until(b'\n', &mut answer).map_err(io_err)?;
        if answer.is_empty() {
            return Err(ClientError::Protocol(
                "the daemon closed the connection without answering".into(),
            ));
        }
        if answer.len() > MAX_RESPONSE_BYTES {
            return Err(ClientError::Protocol("the answer is too large".into()));
        }
        let env: ResponseEnvelope =
            serde_json::from_slice(&answer).map_err(|e| ClientError::Protocol(format!("{e}")))?;
        Ok(env.into_result()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_socket_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("control.sock");
        let e = Client::new(&p).request(Request::Status).unwrap_err();
        assert!(matches!(e, ClientError::Connect { .. }));
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("cannot reach rustiscsid at {}: ", p.display())),
            "{msg}"
        );
    }
}
