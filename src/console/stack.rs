//! Stack traces: frame lines, generic frames to skip, and the guilty frame.

use std::sync::LazyLock;

use regex::bytes::Regex;

use super::oops::{CALL_TRACE, Extractor, Part, RIP_FRAME, StackFmt, compile};

static RIP: LazyLock<Regex> = LazyLock::new(|| compile(RIP_FRAME));

/// Lines that start a new stack trace (and so end the one being parsed).
static STACK_START: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"Call (?:T|t)race",
        r"Allocated:",
        r"Allocated by task [0-9]+:",
        r"Freed:",
        r"Freed by task [0-9]+:",
        // `backtrace:` but not `stack backtrace:`.
        r"[^k] backtrace:",
        r"Backtrace:",
        r"Uninit was stored to memory at",
    ]
    .iter()
    .map(|r| compile(r))
    .collect()
});

/// A frame line: `func+0x12/0x34`, optionally behind one or two `[<pc>]`.
static FRAME: LazyLock<Regex> = LazyLock::new(|| compile(r"^ *(?:{{PC}} ){0,2}{{FUNC}}"));

/// 32-bit Arm: `[<pc>] (func) from [<pc>] (caller+0x1/0x2)`, both frames.
static ARM_FRAME: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^ *{{PC}} \(([a-zA-Z0-9_.]+)\) from {{PC}} \({{FUNC}}"));

/// The captures of a frame line in any architecture's format.
pub(crate) fn frame_captures(line: &[u8]) -> Option<regex::bytes::Captures<'_>> {
    FRAME.captures(line).or_else(|| ARM_FRAME.captures(line))
}

/// A frame line with its offset and size, for the frame list in the output.
static FRAME_DETAIL: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"^ *(?:{{PC}} ){0,2}(\? )?([a-zA-Z0-9_.]+)\+(0x[0-9a-f]+)/(0x[0-9a-f]+)")
});

/// Fault-injection stacks interleave with reports; their presence makes the
/// frame list unreliable.
static CORRUPTED_LINE: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"^( \[\<?(?:0x)?[0-9a-f]+\>?\]| )? should_fail(slab)?(\.[a-z0-9.]+)?\+0x")
});

/// Generic frames: locking, allocators, sanitizers, printk, string and copy
/// helpers, report machinery. Substring matches, as in syzkaller.
const SKIP: &[&str] = &[
    "__sanitizer",
    "__asan",
    "kasan",
    "hwasan",
    "__msan",
    "kmsan",
    "kcsan_setup_watchpoint",
    "check_memory_region",
    "check_heap_object",
    "check_object",
    "read_word_at_a_time",
    "(read|write)_once_.*nocheck",
    "print_address_description",
    "panic",
    "invalid_op",
    "report_bug",
    "fixup_bug",
    "fixup_exception",
    "do_error",
    "_trap",
    "dump_stack",
    "dump_backtrace",
    "unwind_backtrace",
    "walk_stackframe",
    "stack_trace_consume_entry",
    "print_tainted",
    "get_taint",
    "hex_dump",
    "do_kernel_fault",
    "^trace_hardirqs",
    "lock_timer_base",
    "alloc_frozen_pages",
    "^crc",
    "^xas_",
    "rhashtable_lookup",
    "drop_nlink",
    "^iput$",
    "cleanup_srcu_struct",
    "fast_dput",
    "mark_buffer_dirty",
    "aes_encrypt",
    "klist_next",
    "assertfail",
    "do_tag_check_fault",
    "do_translation_fault",
    "arch_stack_walk",
    "put_device",
    "mod_timer",
    "timer_delete",
    "^aes",
    "^dput$",
    "wait_for_completion",
    "do_mem_abort",
    "^el1",
    "stack_trace_save",
    "find_lock_entries",
    "truncate_inode_pages",
    "insert_work",
    "__raw_read",
    "__raw_write",
    "^logic_(?:in|out)",
    "queue_delayed_work",
    "^crypto_cipher",
    "sk_stop_timer",
    "cipher_crypt",
    "show_stack",
    "print_report",
    "__might_resched",
    "^__phys_addr$",
    "warn_slowpath",
    "warn_alloc",
    "warn_bogus",
    "__warn",
    "alloc_page",
    "k?v?(?:m|z|c)alloc",
    "krealloc",
    "kmem_cache",
    "allocate_slab",
    "folio_(?:alloc|unlock)",
    "filemap_alloc_folio",
    "__filemap_get_folio",
    "find_or_create_page",
    "do_read_cache_folio",
    "read_cache_page",
    "pagecache_get_page",
    "grab_cache_page_write_begin",
    "slab_",
    "debug_object",
    "timer_is_static_object",
    "work_is_static_object",
    "__might_fault",
    "print_unlock",
    "imbalance_bug",
    "lockdep",
    "bh_enable",
    "bh_disable",
    "perf_trace",
    "lock_acquire",
    "lock_release",
    "lock_class",
    "mark_lock",
    "(reacquire|mark)_held_locks",
    "raw_spin_rq",
    "spin_lock",
    "spin_trylock",
    "spin_unlock",
    "read_lock",
    "read_trylock",
    "write_lock",
    "write_trylock",
    "read_unlock",
    "write_unlock",
    "^down$",
    "down_read",
    "down_write",
    "down_read_trylock",
    "down_write_trylock",
    "down_trylock",
    "up_read",
    "up_write",
    "^mutex_",
    "^__mutex_",
    "^rt_mutex_",
    "owner_on_cpu",
    "osq_lock",
    "osq_unlock",
    "atomic(64)?_",
    "(set|clear|change|test)_bit",
    "__wake_up",
    "^refcount_",
    "^kref_",
    "ref_tracker",
    "seqprop_assert",
    "memcpy",
    "memcmp",
    "memset",
    "memchr",
    "memmove",
    "memdup",
    "strcmp",
    "strncmp",
    "strcpy",
    "strlcpy",
    "strncpy",
    "strscpy",
    "strlen",
    "strstr",
    "strnstr",
    "strnlen",
    "strchr",
    "strdup",
    "strndup",
    "copy_to_user",
    "copy_from_user",
    "copy_to_iter",
    "copy_from_iter",
    "copy_page_to_iter",
    "copy_page_from_iter",
    "copy_folio_to_iter",
    "^copyin$",
    "^copyout$",
    "put_user",
    "get_user",
    "might_fault",
    "might_sleep",
    "list_add",
    "list_del",
    "list_replace",
    "list_move",
    "list_splice",
    "^rb_",
    "^__rb_",
    "_indirect_thunk_",
    "string",
    "pointer",
    "snprintf",
    "scnprintf",
    "kasprintf",
    "kvasprintf",
    "printk",
    "va_format",
    "dev_info",
    "dev_notice",
    "dev_warn",
    "dev_err",
    "dev_alert",
    "dev_crit",
    "dev_emerg",
    "program_check_exception",
    "program_check_common",
    "del_timer",
    "flush_work",
    "__cancel_work_timer",
    "cancel_work_sync",
    "try_to_grab_pending",
    "flush_workqueue",
    "drain_workqueue",
    "destroy_workqueue",
    "queue_work",
    "finish_wait",
    "kthread_stop",
    "kobject_",
    "add_uevent_var",
    "get_device_parent",
    "device_add",
    "device_del",
    "device_unregister",
    "device_destroy",
    "device_release",
    "devres_release_all",
    "hwrng_unregister",
    "i2c_del_adapter",
    "__unregister_client",
    "device_for_each_child",
    "rollback_registered",
    "unregister_netdev",
    "sysfs_remove",
    "__sysfs_remove",
    "refcount_dec_and_test",
    "kfree",
    "kvfree",
    "vfree",
    "__free_pages",
    "free_pages",
    "put_page",
    "ubsan",
    "__ubsan",
];

/// Prefixes of syscall wrappers, stripped so that titles stay stable across
/// kernel versions and architectures.
const STRIP_PREFIXES: &[&str] = &[
    "SYSC_",
    "SyS_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__se_sys_",
    "__se_",
    "__do_sys_",
    "compat_SYSC_",
    "compat_SyS_",
    "ksys_",
];

static SKIP_RE: LazyLock<Regex> = LazyLock::new(|| compile(&SKIP.join("|")));

/// Generic dispatchers: for stalls the guilty frame is the one they called.
static STALL_ANCHORS: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        &[
            "process_one_work",
            "do_syscall_",
            "do_fast_syscall_",
            "sysenter_dispatch",
            "tracesys_phase2",
            "el0_svc_handler",
            "invoke_syscall",
            "ret_fast_syscall",
            "netif_receive_skb",
            "do_softirq",
            "call_timer_fn",
            "_run_timers",
            "run_timer_softirq",
            "hrtimer_run",
            "run_ksoftirqd",
            "smpboot_thread_fn",
            "^kthread$",
            "start_secondary",
            "cpu_startup_entry",
            "ret_from_fork",
            "vfs_write",
            "vfs_read",
            "vfs_iter_read",
            "vfs_iter_write",
            "do_iter_read",
            "do_iter_write",
            "call_read_iter",
            "call_write_iter",
            "new_sync_read",
            "new_sync_write",
            "vfs_ioctl",
            "ksys_ioctl",
            "compat_ioctl",
            "compat_sys_ioctl",
            "blkdev_driver_ioctl",
            "blkdev_ioctl",
            "^call_read_iter",
            "^call_write_iter",
            "do_iter_readv_writev",
            "^call_mmap",
            "mmap_region",
            "do_mmap",
            "do_dentry_open",
            "vfs_open",
            "^sock_sendmsg",
            "^sock_recvmsg",
            "^sock_release",
            "^__sock_release",
            "^setsockopt$",
            "kernel_setsockopt",
            "sock_common_setsockopt",
            "^getsockopt$",
            "kernel_getsockopt",
            "sock_common_getsockopt",
            "__netif_receive_skb",
            "^__fput$",
            "^__do_fault$",
            "task_work_run",
            "tasklet_action",
            "^rtnetlink_rcv_msg$",
            "^nfnetlink_rcv_msg$",
            "^nfnetlink_rcv_batch$",
            "^genl_family_rcv_msg",
            "^genl_rcv_msg$",
        ]
        .join("|"),
    )
});

/// Frames of scheduler and waiting machinery in hung-task stacks.
static HUNG_TASK_SKIP: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        &[
            "schedule",
            "_lock",
            "down",
            "rwsem",
            "completion",
            "kthread",
            "wait",
            "synchronize",
            "context_switch",
            "__switch_to",
            "cancel_delayed_work",
            "rcu_barrier",
            "mutex",
            "__sched_text_start",
            "usb_control_msg",
            "usb_start_wait_urb",
            "usb_bulk_msg",
        ]
        .join("|"),
    )
});

/// One parsed stack frame.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    pub func: String,
    pub offset: u64,
    pub size: u64,
    pub questionable: bool,
}

/// Every frame line in `report`, in order, for the output's frame list.
pub(crate) fn frames(report: &[u8]) -> Vec<Frame> {
    report
        .split(|&b| b == b'\n')
        .filter_map(|l| {
            let c = FRAME_DETAIL.captures(l)?;
            let hex = |i: usize| {
                let s = std::str::from_utf8(&c[i]).unwrap_or("0x0");
                u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(0)
            };
            Some(Frame {
                func: String::from_utf8_lossy(&c[2]).into_owned(),
                offset: hex(3),
                size: hex(4),
                questionable: c.get(1).is_some(),
            })
        })
        .collect()
}

fn matches_stack_start(line: &[u8]) -> bool {
    STACK_START.iter().any(|r| r.is_match(line))
}

fn push_frame(frames: &mut Vec<String>, caps: &regex::bytes::Captures, extra_skip: Option<&Regex>) {
    for m in caps.iter().skip(1).flatten() {
        let mut name = String::from_utf8_lossy(m.as_bytes()).into_owned();
        for prefix in STRIP_PREFIXES {
            if let Some(rest) = name.strip_prefix(prefix) {
                name = rest.to_owned();
            }
        }
        if name.is_empty()
            || SKIP_RE.is_match(name.as_bytes())
            || extra_skip.is_some_and(|s| s.is_match(name.as_bytes()))
        {
            continue;
        }
        frames.push(name);
    }
}

/// Result of walking a stack format over a report.
pub(crate) struct Extracted {
    pub frame: Option<String>,
    pub corrupted: bool,
    /// The format's first anchor line (such as the RIP line) is missing.
    pub missed_first: bool,
}

/// Walks `parts` over the lines of `report` (which starts at the title match)
/// and picks the guilty frame.
fn extract_parts(report: &[u8], parts: &[Part], fmt: &StackFmt, questionable: bool) -> Extracted {
    let mut lines = report.split(|&b| b == b'\n');
    let mut frames: Vec<String> = Vec::new();
    let mut corrupted = false;
    let mut missed_first = false;
    let mut anchored = false;
    let mut corrupted_before_frames = false;
    let mut idx = 0;
    'parts: while idx < parts.len() {
        match &parts[idx] {
            part @ (Part::Line(_) | Part::Rip) => {
                let re = match part {
                    Part::Line(re) => re,
                    _ => &*RIP,
                };
                // A line that never comes (a RIP line in an abbreviated
                // report, a `Call Trace:` header after an inline RIP in older
                // formats) does not consume the rest of the report once an
                // earlier line anchored the parse.
                let mut ahead = lines.clone();
                let mut found = false;
                for ln in ahead.by_ref() {
                    if CORRUPTED_LINE.is_match(ln) {
                        corrupted = true;
                        corrupted_before_frames |= frames.is_empty();
                    }
                    if let Some(c) = re.captures(ln) {
                        push_frame(&mut frames, &c, fmt.skip.as_ref());
                        found = true;
                        break;
                    }
                }
                if found {
                    anchored = true;
                    lines = ahead;
                } else if matches!(part, Part::Rip) {
                    missed_first |= idx == 0;
                } else if !anchored {
                    // Nothing to parse a trace after.
                    lines = ahead;
                }
            }
            Part::Trace => {
                let trace_start = frames.len();
                for ln in lines.by_ref() {
                    if CORRUPTED_LINE.is_match(ln) {
                        corrupted = true;
                        corrupted_before_frames |= frames.is_empty();
                        idx += 1;
                        continue 'parts;
                    }
                    if matches_stack_start(ln) {
                        idx += 1;
                        continue 'parts;
                    }
                    if let Some(Part::Line(next)) = parts.get(idx + 1)
                        && let Some(c) = next.captures(ln)
                    {
                        push_frame(&mut frames, &c, fmt.skip.as_ref());
                        idx += 2;
                        continue 'parts;
                    }
                    if let Some(c) = frame_captures(ln) {
                        // With `? ` frames admitted, the frames above an
                        // exception entry are the exception handling itself;
                        // the fault happened in the frame after the entry.
                        if questionable
                            && c.get(1)
                                .is_some_and(|f| f.as_bytes().starts_with(b"asm_exc_"))
                        {
                            frames.truncate(trace_start);
                            continue;
                        }
                        push_frame(&mut frames, &c, fmt.skip.as_ref());
                    }
                }
            }
        }
        idx += 1;
    }
    Extracted {
        // A fault-injection stack interleaved before any frame makes the
        // frame choice a guess.
        frame: if corrupted_before_frames {
            None
        } else {
            pick(&frames, fmt.extractor)
        },
        corrupted,
        missed_first,
    }
}

/// Picks the guilty frame of a report. `questionable` admits `? ` frames (a
/// second pass over reports whose reliable frames gave nothing, such as
/// abbreviated reports pasted into mail); it also falls back to the plain call
/// trace when the format's anchor lines are missing.
pub(crate) fn extract(report: &[u8], fmt: &StackFmt, questionable: bool) -> Extracted {
    if fmt.extractor == Extractor::StalledRip
        && let Some(rip) = kernel_rip(report, fmt)
    {
        return Extracted {
            frame: Some(rip),
            corrupted: false,
            missed_first: false,
        };
    }
    let mut result = extract_parts(report, &fmt.parts, fmt, questionable);
    if result.frame.is_none() && !fmt.parts2.is_empty() {
        result = extract_parts(report, &fmt.parts2, fmt, questionable);
    }
    if result.frame.is_none() && questionable {
        let plain = [Part::Line(compile(CALL_TRACE)), Part::Trace];
        result = extract_parts(report, &plain, fmt, questionable);
    }
    result
}

/// The stalled CPU's kernel RIP, when the report prints its registers before
/// the call trace (as kernels since 5.x do for self-detected stalls) and the
/// function is not generic. A RIP printed inside the trace belongs to an
/// interrupted context on the way and is left to the anchors.
fn kernel_rip(report: &[u8], fmt: &StackFmt) -> Option<String> {
    let line = report
        .split(|&b| b == b'\n')
        .take_while(|l| memchr::memmem::find(l, b"Call Trace").is_none())
        .find(|l| memchr::memmem::find(l, b"RIP: 0010:").is_some())?;
    memchr::memmem::find(report, b"Call Trace")?;
    let caps = RIP.captures(line)?;
    let mut frames = Vec::new();
    push_frame(&mut frames, &caps, fmt.skip.as_ref());
    frames.pop()
}

fn pick(frames: &[String], extractor: Extractor) -> Option<String> {
    match extractor {
        Extractor::First => frames.first().cloned(),
        Extractor::Stall | Extractor::StalledRip => {
            // Cross-CPU calls wait for another CPU: the wait is the stall.
            if frames.iter().any(|f| f.starts_with("smp_call_function")) {
                return Some("smp_call_function".to_owned());
            }
            // A stall loops through several functions and the trace shows a
            // random point in the loop: the function a generic dispatcher
            // called is stable across reports of the same bug.
            let mut prev: Option<&String> = None;
            for f in frames {
                if STALL_ANCHORS.is_match(f.as_bytes()) {
                    return prev.or(Some(f)).cloned();
                }
                prev = Some(f);
            }
            frames.first().cloned()
        }
        Extractor::HungTask => {
            // Tasks blocked on a global lock or grace period hang wherever
            // they happen to wait: name the lock, not the victim.
            for f in frames {
                if f.starts_with("synchronize_rcu")
                    || f.starts_with("synchronize_sched")
                    || f == "__wait_rcu_gp"
                {
                    return Some("synchronize_rcu".to_owned());
                }
                if f == "rtnl_lock" {
                    return Some(f.clone());
                }
            }
            frames
                .iter()
                .find(|f| !HUNG_TASK_SKIP.is_match(f.as_bytes()))
                .cloned()
        }
    }
}
