//! One synchronous connection to Redis with the store's scripts loaded, and what the store
//! learns about the server when it connects.

use std::time::Duration;

use super::scripts;

/// How long connecting may take before the attempt fails (an unreachable server must give a
/// clear error quickly, and a writer reconnecting must not hold commits for long).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one request may take; a server that stops answering fails the batch (and its
/// commits) instead of hanging them.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The SHA1 names of the loaded scripts.
#[derive(Debug, Clone)]
pub(crate) struct Shas {
    pub queue_write: String,
    pub queue_page: String,
    pub sessions: String,
}

pub(crate) struct Conn {
    pub con: redis::Connection,
    pub shas: Shas,
    /// The server has WAITAOF (Redis >= 7.2) and appendonly on, so a sync commit can wait
    /// until its writes are fsynced to the append-only file.
    pub waitaof: bool,
}

impl Conn {
    /// Connects and loads the scripts. The error says what failed, without the URL (callers
    /// add it).
    pub fn open(client: &redis::Client) -> Result<Conn, String> {
        let mut con =
            client.get_connection_with_timeout(CONNECT_TIMEOUT).map_err(|error| format!("cannot connect: {error}"))?;
        con.set_read_timeout(Some(IO_TIMEOUT)).map_err(|error| format!("cannot set a read timeout: {error}"))?;
        con.set_write_timeout(Some(IO_TIMEOUT)).map_err(|error| format!("cannot set a write timeout: {error}"))?;
        let mut load = |script: &str| -> Result<String, String> {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script)
                .query::<String>(&mut con)
                .map_err(|error| format!("cannot load the store's scripts: {error}"))
        };
        let shas = Shas {
            queue_write: load(scripts::QUEUE_WRITE)?,
            queue_page: load(scripts::QUEUE_PAGE)?,
            sessions: load(scripts::SESSIONS)?,
        };
        let waitaof = detect_waitaof(&mut con);
        Ok(Conn { con, shas, waitaof })
    }
}

/// Whether the server has WAITAOF and appendonly on. Detected, never required: a server
/// without it (or that hides INFO) is used without it.
fn detect_waitaof(con: &mut redis::Connection) -> bool {
    let Ok(info) = redis::cmd("INFO").arg("server").arg("persistence").query::<String>(con) else { return false };
    let field = |name: &str| {
        info.lines().find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(':'))).map(str::trim)
    };
    let version: Vec<u32> =
        field("redis_version").unwrap_or("0").split('.').map(|part| part.parse().unwrap_or(0)).collect();
    let has_waitaof = version.first().copied().unwrap_or(0) > 7
        || (version.first() == Some(&7) && version.get(1).copied().unwrap_or(0) >= 2);
    has_waitaof && field("aof_enabled") == Some("1")
}

/// The URL with any password replaced by `***`, for messages and `describe`.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|at| at + 3) else { return url.to_string() };
    let authority_end = url[scheme_end..].find('/').map_or(url.len(), |at| scheme_end + at);
    let Some(at) = url[scheme_end..authority_end].rfind('@').map(|at| scheme_end + at) else {
        return url.to_string();
    };
    let userinfo = &url[scheme_end..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let hidden = if userinfo.contains(':') { format!("{user}:***") } else { "***".to_string() };
    format!("{}{hidden}{}", &url[..scheme_end], &url[at..])
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        assert_eq!(redact("redis://user:secret@host:1/0"), "redis://user:***@host:1/0");
        assert_eq!(redact("redis://:secret@host"), "redis://:***@host");
        assert_eq!(redact("redis://secret@host/2"), "redis://***@host/2");
    }
}
