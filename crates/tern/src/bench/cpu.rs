//! The CPU time this process has used (user + system, all threads), from `/proc/self/stat`,
//! so that a run can report what the load generator itself cost per message.

use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`): 100 on every Linux ABI.
const USER_HZ: u64 = 100;

/// User plus system CPU time of this process so far; `None` where `/proc` is not there.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// utime and stime of one `/proc/PID/stat` line. The command name (field 2) is in
/// parentheses and may contain spaces, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1_000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_after_the_command_name() {
        let stat = "4242 (tern bench (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 3 0 1 0 0";
        assert_eq!(parse_stat(stat), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(process_cpu().is_some());
    }
}
