//! Reading a process's CPU time and resident memory from `/proc`, for cost-per-delivery figures.

use std::io;

/// Clock ticks per second of `/proc/PID/stat` times. `sysconf(_SC_CLK_TCK)` would need libc and
/// `unsafe`, which the workspace forbids; the kernel ABI fixes USER_HZ at 100 on x86-64 and arm64.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// This bench.
    Own,
    /// Another process by id, usually the server.
    Pid(u32),
}

impl Process {
    fn path(self, file: &str) -> String {
        match self {
            Self::Own => format!("/proc/self/{file}"),
            Self::Pid(pid) => format!("/proc/{pid}/{file}"),
        }
    }

    /// User plus system CPU seconds the process has used so far.
    pub fn cpu_secs(self) -> io::Result<f64> {
        let stat = std::fs::read_to_string(self.path("stat"))?;
        let ticks = cpu_ticks(&stat).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc stat format")
        })?;
        Ok(ticks as f64 / CLOCK_TICKS_PER_SEC)
    }

    /// Resident set size in bytes.
    pub fn rss_bytes(self) -> io::Result<u64> {
        let status = std::fs::read_to_string(self.path("status"))?;
        vm_rss_bytes(&status)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc status"))
    }
}

/// CPU time of the whole machine so far, all cores together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineCpu {
    /// Seconds spent running anything (user, system, interrupts, steal).
    pub busy_secs: f64,
    /// Seconds of every kind, idle included: elapsed time × cores.
    pub total_secs: f64,
}

impl MachineCpu {
    /// Reads `/proc/stat`.
    pub fn now() -> io::Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        machine_cpu(&stat)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/stat"))
    }
}

/// The aggregate `cpu` line of `/proc/stat`.
fn machine_cpu(stat: &str) -> Option<MachineCpu> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already within user]
    let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let idle = field(3) + field(4);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    Some(MachineCpu {
        busy_secs: busy as f64 / CLOCK_TICKS_PER_SEC,
        total_secs: (busy + idle) as f64 / CLOCK_TICKS_PER_SEC,
    })
}

/// `utime + stime` from the text of `/proc/PID/stat`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may itself hold spaces or parentheses,
    // so fields are counted from the last ')'. After it come field 3 (state) onwards.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace();
    // utime and stime are fields 14 and 15: the 12th and 13th after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in bytes from the text of `/proc/PID/status` (which gives it in kB).
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line["VmRSS:".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_survive_odd_command_names() {
        let stat = "4242 (suda (srv) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 3 0 \
                    9999 123456789 2048 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tsuda-server\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_bytes(status), Some(5120 * 1024));
        assert_eq!(vm_rss_bytes("Name:\tx\n"), None);
    }

    #[test]
    fn machine_cpu_adds_up_busy_and_idle() {
        let stat = "cpu  100 5 30 200 10 1 2 3 7 0\ncpu0 50 2 15 100 5 0 1 1 0 0\n";
        assert_eq!(
            machine_cpu(stat),
            Some(MachineCpu {
                busy_secs: 1.41,
                total_secs: 3.51
            })
        );
        assert!(MachineCpu::now().expect("/proc/stat").total_secs > 0.0);
    }

    #[test]
    fn own_process_can_be_read() {
        assert!(Process::Own.cpu_secs().expect("stat") >= 0.0);
        assert!(Process::Own.rss_bytes().expect("status") > 0);
    }
}
