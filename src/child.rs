//! Child processes that die with lorebot: a guest or a build left running
//! by a killed lorebot would hold the CPUs (and write into a build
//! directory) while the restarted lorebot redoes the same work.

use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// Makes the child get SIGKILL when the thread that started it ends,
/// including when lorebot is killed.
pub fn dies_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe and touches no memory of the
    // parent; it is all the child does between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
