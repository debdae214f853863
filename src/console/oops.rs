//! The table of kernel oops headers and title formats.
//!
//! The formats follow syzkaller's `pkg/report/linux.go` so that titles match
//! what kernel developers already see from syzbot. Regular expressions use the
//! same RE2 syntax; `{{PC}}`, `{{FUNC}}`, `{{SRC}}` and `{{ADDR}}` expand as in
//! syzkaller.

use regex::bytes::Regex;

use super::Kind;

/// How the guilty frame is picked from the frames a stack format collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Extractor {
    /// The first frame that survives the skip list.
    First,
    /// Stalls and lockups: the frame called by the outermost generic
    /// dispatcher ("anchor") found from the top of the stack.
    Stall,
    /// RCU stalls: the stalled CPU's RIP when the report prints it before
    /// the trace and it is not generic, else `Stall`.
    StalledRip,
    /// Hung tasks: the first frame that is not scheduler or waiting machinery.
    HungTask,
}

/// One step of a stack format: a line to find, or "parse a stack trace here".
pub(crate) enum Part {
    Line(Regex),
    /// The `RIP:`/`pc :` line; abbreviated reports may lack it.
    Rip,
    Trace,
}

pub(crate) struct StackFmt {
    pub parts: Vec<Part>,
    /// Tried when `parts` yields no frame (older kernels print the trace in
    /// another order).
    pub parts2: Vec<Part>,
    pub skip: Option<Regex>,
    pub extractor: Extractor,
}

pub(crate) struct Format {
    pub title: Regex,
    pub report: Option<Regex>,
    /// Title template: `{N}` is the N-th capture group (1-based) of `report`
    /// (or `title` when there is no report regex); the frame comes last.
    pub fmt: &'static str,
    pub alt: &'static [&'static str],
    pub stack: Option<StackFmt>,
    pub no_stack_trace: bool,
    pub corrupted: bool,
    pub kind: Option<Kind>,
}

pub(crate) struct Oops {
    pub header: &'static [u8],
    pub formats: Vec<Format>,
    pub suppressions: Vec<Regex>,
    pub kind: Kind,
}

pub(crate) fn compile(re: &str) -> Regex {
    // Go's RE2 reads `\<` as a literal `<`; Rust's regex reads it as a word
    // boundary.
    let re = re
        .replace(r"\<", "<")
        .replace(r"\>", ">")
        .replace("{{ADDR}}", "0x[0-9a-f]+")
        .replace("{{PC}}", r"\[<?(?:0x)?[0-9a-f]+>?\]")
        .replace("{{FUNC}}", r"([a-zA-Z0-9_]+)(?:\.|\+)")
        .replace("{{SRC}}", r"([a-zA-Z0-9-_/.]+\.[a-z]+:[0-9]+)");
    match Regex::new(&re) {
        Ok(r) => r,
        // The table is static: a bad pattern is a programming error caught by
        // every test run.
        Err(e) => panic!("bad built-in pattern {re:?}: {e}"),
    }
}

fn skip(patterns: &[&str]) -> Option<Regex> {
    if patterns.is_empty() {
        None
    } else {
        Some(compile(&patterns.join("|")))
    }
}

pub(crate) const RIP_FRAME: &str = r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{{PC}} +){0,2}{{FUNC}}|(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?{{PC}} +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))";
pub(crate) const CALL_TRACE: &str = r"(?:Call (?:T|t)race:)|(?:Backtrace:)";

fn line(re: &str) -> Part {
    Part::Line(compile(re))
}

/// RIP frame, then the call trace.
fn rip_trace(skips: &[&str]) -> Option<StackFmt> {
    Some(StackFmt {
        parts: vec![Part::Rip, line(CALL_TRACE), Part::Trace],
        parts2: vec![],
        skip: skip(skips),
        extractor: Extractor::First,
    })
}

/// The call trace only.
fn trace(skips: &[&str]) -> Option<StackFmt> {
    Some(StackFmt {
        parts: vec![line(CALL_TRACE), Part::Trace],
        parts2: vec![],
        skip: skip(skips),
        extractor: Extractor::First,
    })
}

/// The lock's release site, then the stack of the task releasing it.
fn unlock_balance_stack() -> Option<StackFmt> {
    stack(
        vec![
            line("is trying to release lock"),
            line("{{PC}} +{{FUNC}}"),
            line(CALL_TRACE),
            Part::Trace,
        ],
        &[],
        Extractor::First,
    )
}

/// KMSAN prints the frames right after its header, without `Call Trace:`.
fn kmsan_trace(skips: &[&str]) -> Option<StackFmt> {
    stack(vec![Part::Trace], skips, Extractor::First)
}

fn stack(parts: Vec<Part>, skips: &[&str], extractor: Extractor) -> Option<StackFmt> {
    Some(StackFmt {
        parts,
        parts2: vec![],
        skip: skip(skips),
        extractor,
    })
}

fn fmt(title: &str, fmt: &'static str, stack: Option<StackFmt>) -> Format {
    Format {
        title: compile(title),
        report: None,
        fmt,
        alt: &[],
        stack,
        no_stack_trace: false,
        corrupted: false,
        kind: None,
    }
}

impl Format {
    fn report(mut self, re: &str) -> Self {
        self.report = Some(compile(re));
        self
    }
    fn alt(mut self, alt: &'static [&'static str]) -> Self {
        self.alt = alt;
        self
    }
    fn no_stack(mut self) -> Self {
        self.no_stack_trace = true;
        self
    }
    fn corrupted(mut self) -> Self {
        self.corrupted = true;
        self
    }
    fn kind(mut self, kind: Kind) -> Self {
        self.kind = Some(kind);
        self
    }
}

fn oops(header: &'static str, kind: Kind, formats: Vec<Format>, suppressions: &[&str]) -> Oops {
    Oops {
        header: header.as_bytes(),
        formats,
        suppressions: suppressions.iter().map(|s| compile(s)).collect(),
        kind,
    }
}

fn lockdep_formats(prefix: &str) -> Vec<Format> {
    let p = prefix;
    vec![
        fmt(
            &format!("{p}: possible circular locking dependency detected"),
            "possible deadlock in {1}",
            stack(
                vec![
                    line("at: (?:{{PC}} +)?{{FUNC}}"),
                    line("at: (?:{{PC}} +)?{{FUNC}}"),
                    Part::Trace,
                ],
                &[
                    "process_one_work",
                    "flush_workqueue",
                    "drain_workqueue",
                    "destroy_workqueue",
                ],
                Extractor::First,
            ),
        )
        .report(&format!(
            r"{p}: possible circular locking dependency detected(?:.*\n)+?.*is trying to acquire lock"
        ))
        .kind(Kind::Lockdep),
        fmt(
            &format!("{p}: possible irq lock inversion dependency detected"),
            "possible deadlock in {1}",
            None,
        )
        .report(&format!(
            r"{p}: possible irq lock inversion dependency detected(?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*at: (?:{{{{PC}}}} +)?{{{{FUNC}}}}"
        ))
        .no_stack()
        .kind(Kind::Lockdep),
        fmt(
            &format!("{p}: .*-safe -> .*-unsafe lock order detected"),
            "possible deadlock in {1}",
            None,
        )
        .report(&format!(
            r"{p}: .*-safe -> .*-unsafe lock order detected(?:.*\n)+?.*is trying to acquire(?:.*\n)+?.*at: (?:{{{{PC}}}} +)?{{{{FUNC}}}}"
        ))
        .no_stack()
        .kind(Kind::Lockdep),
        fmt(
            &format!("{p}: possible recursive locking detected"),
            "possible deadlock in {1}",
            None,
        )
        .report(&format!(
            r"{p}: possible recursive locking detected(?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: (?:{{{{PC}}}} +)?{{{{FUNC}}}}"
        ))
        .no_stack()
        .kind(Kind::Lockdep),
        fmt(
            &format!("{p}: inconsistent lock state"),
            "inconsistent lock state in {1}",
            None,
        )
        .report(&format!(
            r"{p}: inconsistent lock state(?:.*\n)+?.*takes(?:.*\n)+?.*at: (?:{{{{PC}}}} +)?{{{{FUNC}}}}"
        ))
        .no_stack()
        .kind(Kind::Lockdep),
        fmt(
            &format!("{p}: suspicious RCU usage"),
            // The title names the source file; the frame is appended last.
            if p == "WARNING" {
                "WARNING: suspicious RCU usage in {2}"
            } else {
                "INFO: suspicious RCU usage in {2}"
            },
            trace(&["rcu", "kmem", "slab"]),
        )
        .report(&format!(
            r"{p}: suspicious RCU usage(?:.*\n)+?.*?{{{{SRC}}}}"
        ))
        .kind(Kind::Lockdep),
    ]
}

/// Builds the table. Order matters: the first header found in a line wins, and
/// within an oops the format matching earliest in the report wins.
pub(crate) fn table() -> Vec<Oops> {
    let bug = vec![
        fmt(
            "BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in",
            "KASAN: invalid-free in {1}",
            trace(&["slab_", "kfree", "vunmap", "vfree"]),
        )
        .alt(&["invalid-free in {1}"])
        .kind(Kind::Kasan),
        fmt(
            "BUG: KASAN:",
            "KASAN: {1} {3} in {4}",
            stack(
                vec![
                    line(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}"),
                    line(CALL_TRACE),
                    Part::Trace,
                ],
                &["slab_", "kfree", "vunmap", "vfree"],
                Extractor::First,
            ),
        )
        .report(
            r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}(?:.*\n)+?.*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)",
        )
        .alt(&["bad-access in {4}"])
        .kind(Kind::Kasan),
        fmt(
            "BUG: KASAN:",
            "KASAN: invalid-free in {2}",
            stack(
                vec![
                    line("BUG: KASAN: double-free or invalid-free in {{FUNC}}"),
                    line(CALL_TRACE),
                    Part::Trace,
                ],
                &["slab_", "kfree", "vunmap", "vfree"],
                Extractor::First,
            ),
        )
        .report("BUG: KASAN: double-free or invalid-free in {{FUNC}}")
        .alt(&["invalid-free in {2}"])
        .kind(Kind::Kasan),
        fmt(
            r"BUG: KASAN: ([a-z\-]+) on address(?:.*\n)+?.*(Read|Write) of size ([0-9]+)",
            "KASAN: {1} {2}",
            None,
        )
        .kind(Kind::Kasan),
        fmt(
            r"BUG: KASAN: (.*)",
            "KASAN: {1}",
            None,
        )
        .corrupted()
        .kind(Kind::Kasan),
        fmt(
            "BUG: KMSAN: kernel-usb-infoleak",
            "KMSAN: kernel-usb-infoleak in {2}",
            kmsan_trace(&[
                "alloc_skb",
                "usb_submit_urb",
                "usb_start_wait_urb",
                "usb_bulk_msg",
                "usb_interrupt_msg",
                "usb_control_msg",
            ]),
        )
        .report("BUG: KMSAN: kernel-usb-infoleak in {{FUNC}}")
        .no_stack()
        .kind(Kind::Kmsan),
        fmt(
            "BUG: KMSAN:",
            "KMSAN: {1} in {3}",
            kmsan_trace(&["alloc_skb", "netlink_ack", "netlink_rcv_skb"]),
        )
        .report(r"BUG: KMSAN: ([a-z\-]+) in {{FUNC}}")
        .alt(&["bad-access in {3}"])
        .no_stack()
        .kind(Kind::Kmsan),
        fmt(
            "BUG: KCSAN: data-race",
            "KCSAN: data-race in {1} / {2}",
            None,
        )
        .report("BUG: KCSAN: data-race in {{FUNC}}(?:.*) / {{FUNC}}")
        .no_stack()
        .kind(Kind::Kcsan),
        fmt("BUG: KCSAN: (.*)", "KCSAN: {1}", None)
            .no_stack()
            .kind(Kind::Kcsan),
        fmt(
            "BUG: KFENCE: (use-after-free|out-of-bounds) ([a-z]+) in {{FUNC}}",
            "KFENCE: {1} {2} in {4}",
            stack(
                vec![
                    line("BUG: KFENCE: (?:[a-z-]+) (?:[a-z]+) in {{FUNC}}"),
                    Part::Trace,
                ],
                &[],
                Extractor::First,
            ),
        )
        .alt(&["bad-access in {4}"])
        .kind(Kind::Kasan),
        fmt(
            "BUG: KFENCE: invalid free in {{FUNC}}",
            "KFENCE: invalid free in {2}",
            stack(
                vec![line("BUG: KFENCE: invalid free in {{FUNC}}"), Part::Trace],
                &[],
                Extractor::First,
            ),
        )
        .alt(&["invalid-free in {2}"])
        .kind(Kind::Kasan),
        fmt(
            "BUG: KFENCE: invalid (read|write) in {{FUNC}}",
            "KFENCE: invalid {1} in {3}",
            stack(
                vec![
                    line("BUG: KFENCE: invalid (?:read|write) in {{FUNC}}"),
                    Part::Trace,
                ],
                &[],
                Extractor::First,
            ),
        )
        .alt(&["bad-access in {3}"])
        .kind(Kind::Kasan),
        fmt(
            "BUG: KFENCE: memory corruption in {{FUNC}}",
            "KFENCE: memory corruption in {2}",
            stack(
                vec![
                    line("BUG: KFENCE: memory corruption in {{FUNC}}"),
                    Part::Trace,
                ],
                &[],
                Extractor::First,
            ),
        )
        .kind(Kind::Kasan),
        fmt(
            "BUG: (?:unable to handle kernel paging request|unable to handle page fault for address|Unable to handle kernel data access on read|Unable to handle kernel data access on write)",
            "BUG: unable to handle kernel paging request in {1}",
            rip_trace(&[]),
        )
        .alt(&["bad-access in {1}"])
        .kind(Kind::PagingFault),
        fmt(
            "BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference|Kernel NULL pointer dereference)",
            "BUG: unable to handle kernel NULL pointer dereference in {1}",
            rip_trace(&[]),
        )
        .alt(&["bad-access in {1}"])
        .kind(Kind::NullDeref),
        // The second half of the header is printed separately and can be lost.
        fmt(
            "BUG: (?:unable to handle kernel|Unable to handle kernel)",
            "BUG: unable to handle kernel",
            None,
        )
        .corrupted()
        .kind(Kind::PagingFault),
        fmt(
            "BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)",
            "BUG: {1} {2} in {3}",
            trace(&["spin_", "_lock", "_unlock"]),
        )
        .kind(Kind::Bug),
        fmt(
            "BUG: soft lockup",
            "BUG: soft lockup in {1}",
            stack(
                vec![Part::Rip, line(CALL_TRACE), Part::Trace],
                &[],
                Extractor::Stall,
            ),
        )
        .alt(&["stall in {1}"])
        .kind(Kind::SoftLockup),
        fmt(
            "BUG: .*still has locks held!",
            "BUG: still has locks held in {1}",
            None,
        )
        .report(r"BUG: .*still has locks held!(?:.*\n)+?.*{{PC}} +{{FUNC}}")
        .kind(Kind::Lockdep),
        fmt(
            "BUG: scheduling while atomic",
            "BUG: scheduling while atomic in {1}",
            trace(&["schedule"]),
        )
        .kind(Kind::AtomicSleep),
        fmt(
            "BUG: lock held when returning to user space",
            "BUG: lock held when returning to user space in {1}",
            None,
        )
        .report(r"BUG: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
        .no_stack()
        .kind(Kind::Lockdep),
        fmt(
            "BUG: bad unlock balance detected!",
            "BUG: bad unlock balance in {1}",
            unlock_balance_stack(),
        )
        .kind(Kind::Lockdep),
        fmt("BUG: held lock freed!", "BUG: held lock freed in {1}", None)
            .report(r"BUG: held lock freed!(?:.*\n)+?.*{{PC}} +{{FUNC}}")
            .kind(Kind::Lockdep),
        fmt("BUG: Bad rss-counter state", "BUG: Bad rss-counter state", None).no_stack(),
        fmt(
            "BUG: non-zero nr_ptes on freeing mm",
            "BUG: non-zero nr_ptes on freeing mm",
            None,
        )
        .no_stack(),
        fmt(
            "BUG: non-zero nr_pmds on freeing mm",
            "BUG: non-zero nr_pmds on freeing mm",
            None,
        )
        .no_stack(),
        fmt(
            "BUG: Dentry .* still in use",
            "BUG: Dentry still in use in {1}",
            None,
        )
        // Block device names (loop0, loop1...) would split one bug in many.
        .report(r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\] ]+)")
        .alt(&["BUG: Dentry still in use [{1} of {2}]"])
        .no_stack(),
        fmt(
            "BUG: Bad page (state|map|cache)",
            "BUG: Bad page {1} in {2}",
            stack(
                vec![line("page last allocated"), Part::Trace],
                &[
                    "(free|put|get|update|release)_page",
                    "free_unref",
                    "^_*folio",
                    "truncate_inode_pages",
                    "page_frag_free",
                    "alloc",
                    "vmap",
                    "page_owner",
                ],
                Extractor::First,
            ),
        ),
        fmt("BUG: Bad page (state|map|cache)", "BUG: Bad page {1}", None).corrupted(),
        fmt("BUG: workqueue lockup", "BUG: workqueue lockup", None)
            .no_stack()
            .kind(Kind::HungTask),
        fmt(
            "BUG: sleeping function called from invalid context at (.*)",
            "BUG: sleeping function called from invalid context in {2}",
            trace(&[]),
        )
        .kind(Kind::AtomicSleep),
        fmt(
            r"BUG: using __this_cpu_([a-z_]+)\(\) in preemptible",
            "BUG: using __this_cpu_{1}() in preemptible code in {2}",
            trace(&[
                "dump_stack",
                "preemption",
                "preempt",
                "debug_",
                "processor_id",
                "this_cpu",
            ]),
        )
        .kind(Kind::AtomicSleep),
        fmt(
            "BUG: workqueue leaked lock or atomic",
            "BUG: workqueue leaked lock or atomic in {1}",
            None,
        )
        .report(r"BUG: workqueue leaked lock or atomic(?:.*\n)+?.*last function: ([a-zA-Z0-9_]+)\n")
        .no_stack()
        .kind(Kind::Lockdep),
        fmt(
            "BUG: memory leak",
            "memory leak in {1}",
            stack(
                vec![line(r"backtrace(?: \(crc [0-9a-f]+\))?:"), Part::Trace],
                &[
                    "kmemleak",
                    "mmap",
                    "kmem",
                    "slab",
                    "alloc",
                    "create_object",
                    "idr_get",
                    "list_lru_init",
                    "kasprintf",
                    "kvasprintf",
                    "pcpu_create_chunk",
                    "strdup",
                    "strndup",
                    "memdup",
                ],
                Extractor::First,
            ),
        )
        .kind(Kind::Leak),
        fmt(
            "BUG: .*stack guard page was hit at",
            "BUG: stack guard page was hit in {1}",
            stack(
                vec![Part::Rip, line(CALL_TRACE), Part::Trace],
                &[],
                Extractor::Stall,
            ),
        )
        .alt(&["stack-overflow in {1}"]),
        fmt(
            "BUG: Invalid wait context",
            "BUG: Invalid wait context in {1}",
            trace(&[]),
        )
        .kind(Kind::Lockdep),
        fmt(
            "BUG: (MAX_LOCKDEP_KEYS|MAX_LOCKDEP_ENTRIES|MAX_LOCKDEP_CHAINS|MAX_LOCKDEP_CHAIN_HLOCKS|MAX_STACK_TRACE_ENTRIES|MAX_LOCK_DEPTH) too low!",
            "BUG: {1} too low!",
            None,
        )
        .no_stack()
        .kind(Kind::Lockdep),
        fmt(
            "BUG: looking up invalid subclass: [0-9]+",
            "BUG: looking up invalid subclass in {1}",
            trace(&[]),
        )
        .kind(Kind::Lockdep),
        fmt(
            "BUG: corrupted list in ([a-zA-Z0-9_]+)",
            "BUG: corrupted list in {1}",
            None,
        )
        .no_stack(),
        fmt(
            r"BUG: using smp_processor_id\(\) in preemptible",
            "BUG: using smp_processor_id() in preemptible code in {1}",
            trace(&[
                "dump_stack",
                "preemption",
                "preempt",
                "debug_",
                "processor_id",
                "capable",
                "_cpu_",
            ]),
        )
        .kind(Kind::AtomicSleep),
        fmt("BUG: .*bad usercopy", "BUG: bad usercopy in {1}", trace(&["usercopy", "__check"])),
        fmt(
            r"BUG: unable to handle kernel",
            "BUG: unable to handle kernel",
            None,
        )
        .corrupted()
        .kind(Kind::PagingFault),
    ];

    let mut warning = vec![
        fmt(
            r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check)",
            "WARNING: ODEBUG bug in {1}",
            rip_trace(&["debug_object", "debug_check", "debug_print"]),
        )
        .kind(Kind::Warning),
        fmt(
            r"WARNING: .*mm/usercopy\.c.* usercopy_warn",
            "WARNING: bad usercopy in {1}",
            rip_trace(&["usercopy", "__check"]),
        )
        .kind(Kind::Warning),
        fmt(
            r"WARNING: .*lib/kobject\.c.* kobject_",
            "WARNING: kobject bug in {1}",
            rip_trace(&["kobject_"]),
        )
        .kind(Kind::Warning),
        fmt(
            r"WARNING: .*fs/proc/generic\.c.* proc_register",
            "WARNING: proc registration bug in {1}",
            rip_trace(&["proc_register", "proc_create", "proc_mkdir"]),
        )
        .kind(Kind::Warning),
        fmt(
            r"WARNING: .*lib/refcount\.c.* refcount_",
            "WARNING: refcount bug in {1}",
            rip_trace(&["refcount", "kobject_"]),
        )
        .kind(Kind::Warning),
        fmt(
            r"WARNING: .*kernel/locking/lockdep\.c.*lock_",
            "WARNING: locking bug in {1}",
            rip_trace(&["lock_sock", "release_sock", "lock_"]),
        )
        .kind(Kind::Lockdep),
        fmt(
            "WARNING: .*still has locks held!",
            "WARNING: still has locks held in {1}",
            None,
        )
        .report(r"WARNING: .*still has locks held!(?:.*\n)+?.*at: {{FUNC}}")
        .kind(Kind::Lockdep),
        fmt(
            "WARNING: Nested lock was not taken",
            "WARNING: nested lock was not taken in {1}",
            trace(&[]),
        )
        .kind(Kind::Lockdep),
        fmt(
            "WARNING: lock held when returning to user space",
            "WARNING: lock held when returning to user space in {1}",
            None,
        )
        .report(r"WARNING: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
        .no_stack()
        .kind(Kind::Lockdep),
        fmt(
            r"WARNING: .*mm/vmalloc\.c.*__vmalloc_node",
            "WARNING: zero-size vmalloc in {1}",
            rip_trace(&["vmalloc"]),
        )
        .kind(Kind::Warning),
        // The URB submitter is the culprit, not the USB core.
        fmt(
            r"WARNING: (?:.* at )?drivers/usb/core/urb\.c:[0-9]+ (?:at )?usb_submit_urb",
            "WARNING in {1}/usb_submit_urb",
            rip_trace(&[
                "usb_submit_urb",
                "usb_start_wait_urb",
                "usb_bulk_msg",
                "usb_interrupt_msg",
                "usb_control_msg",
            ]),
        )
        .kind(Kind::Warning),
        fmt(
            r"WARNING: .*mm/.*\.c.* k?.?malloc",
            "WARNING: kmalloc bug in {1}",
            rip_trace(&["kmalloc", "krealloc", "slab", "kmem"]),
        )
        .kind(Kind::Warning),
        fmt(
            "WARNING: .* at {{SRC}} {{FUNC}}",
            "WARNING in {3}",
            rip_trace(&[]),
        )
        .kind(Kind::Warning),
        fmt(
            "WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value",
            "WARNING: kernel stack regs has bad '{1}' value",
            None,
        )
        .no_stack()
        .kind(Kind::Warning),
        fmt(
            "WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value",
            "WARNING: kernel stack frame pointer has bad value",
            None,
        )
        .no_stack()
        .kind(Kind::Warning),
        fmt(
            "WARNING: bad unlock balance detected!",
            "WARNING: bad unlock balance in {1}",
            unlock_balance_stack(),
        )
        .kind(Kind::Lockdep),
        fmt("WARNING: held lock freed!", "WARNING: held lock freed in {1}", None)
            .report(r"WARNING: held lock freed!(?:.*\n)+?.*at:? {{PC}} +{{FUNC}}")
            .kind(Kind::Lockdep),
        fmt(
            "WARNING: kernel stack regs .* has bad 'bp' value",
            "WARNING: kernel stack regs has bad value",
            None,
        )
        .no_stack()
        .kind(Kind::Warning),
        // Kernels since 6.16: `WARNING: file.c:123 at func+0x1/0x2, CPU: ...`.
        fmt(
            r"WARNING: lib/refcount\.c:[0-9]+ at ",
            "WARNING: refcount bug in {1}",
            rip_trace(&["refcount", "kobject_"]),
        )
        .kind(Kind::Warning),
        fmt("WARNING: {{SRC}} at ", "WARNING in {2}", rip_trace(&[])).kind(Kind::Warning),
        fmt(
            "WARNING: CPU: [0-9]+ PID: [0-9]+ at {{SRC}}",
            "WARNING in {2}",
            rip_trace(&[]),
        )
        .kind(Kind::Warning),
        fmt("WARNING: .* at {{SRC}}", "WARNING in {2}", rip_trace(&[])).kind(Kind::Warning),
    ];
    warning.splice(0..0, lockdep_formats("WARNING"));

    // The stalled CPU's RIP names the looping function when it is not
    // generic; otherwise the frame called by a dispatcher (see `Extractor`).
    let rcu_stack = || {
        Some(StackFmt {
            parts: vec![
                line("apic_timer_interrupt|Exception stack|el1h_64_irq"),
                Part::Rip,
                Part::Trace,
            ],
            parts2: vec![
                line("(?:apic_timer_interrupt|Exception stack|el1h_64_irq)"),
                Part::Trace,
            ],
            skip: skip(&["apic_timer_interrupt", "rcu"]),
            extractor: Extractor::StalledRip,
        })
    };
    let mut info = lockdep_formats("INFO");
    info.extend([
        // Tasks-RCU stalls name holdout tasks, not CPUs: no timer interrupt
        // in the trace, the task's own stack is the report.
        fmt(
            r"INFO: rcu_tasks(?:_trace|_rude)? detected stalls? on tasks",
            "INFO: rcu detected stall in {1}",
            stack(vec![line(CALL_TRACE), Part::Trace], &["rcu"], Extractor::Stall),
        )
        .alt(&["stall in {1}"])
        .kind(Kind::RcuStall),
        fmt(
            r"INFO: rcu_(?:preempt|sched|bh|tasks|tasks_trace|tasks_rude) (?:self-)?detected(?: expedited)? stall",
            "INFO: rcu detected stall in {1}",
            rcu_stack(),
        )
        .alt(&["stall in {1}"])
        .kind(Kind::RcuStall),
        fmt(
            r"INFO: rcu_(?:preempt|sched|bh|tasks|tasks_trace|tasks_rude) detected(?: expedited)? stalls? on",
            "INFO: rcu detected stall in {1}",
            rcu_stack(),
        )
        .alt(&["stall in {1}"])
        .kind(Kind::RcuStall),
        fmt(
            "INFO: task .* blocked (?:in I/O wait )?for more than [0-9]+ seconds",
            "INFO: task hung in {1}",
            stack(vec![line(CALL_TRACE), Part::Trace], &[], Extractor::HungTask),
        )
        .alt(&["hang in {1}"])
        .kind(Kind::HungTask),
        fmt(
            "INFO: task .*:[0-9]+ can't die for more than [0-9]+ seconds",
            "INFO: task can't die in {1}",
            trace(&["schedule"]),
        )
        .alt(&["hang in {1}"])
        .kind(Kind::HungTask),
        // Captured for corrupted old-style KASAN reports.
        fmt("INFO: (Freed|Allocated) in (.*)", "INFO: {1} in {2}", None)
            .corrupted()
            .kind(Kind::Kasan),
        fmt(
            "INFO: trying to register non-static key",
            "INFO: trying to register non-static key in {1}",
            trace(&["stack", "lock", "IRQ"]),
        )
        .kind(Kind::Lockdep),
    ]);

    vec![
        oops(
            "BUG:",
            Kind::Bug,
            bug,
            &[
                "ODEBUG:",
                "Boot_DEBUG:",
                "xlog_status:",
                "DEBUG:",
                "BUG: no syscalls can create resource",
            ],
        ),
        oops(
            "WARNING:",
            Kind::Warning,
            warning,
            &[
                "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
                "WARNING: workqueue cpumask: online intersect > possible intersect",
                "WARNING: [Tt]he mand mount option",
                r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",
                "WARNING: Unprivileged eBPF is enabled",
                "WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size",
                "WARNING: See https.* for mitigation options",
                "WARNING: kernel not compiled with CPU_SRSO",
                r"EXT4-[Ff][Ss](?: \(.*\))?:",
                r"(?i)warning: .* uses (?:deprecated v2 capabilities|wireless extensions)",
                r"XFS \(\w+\): WARNING",
                "WARNING: The mand mount option",
            ],
        ),
        oops(
            "INFO:",
            Kind::Other,
            info,
            &[
                "INFO: lockdep is turned off",
                "INFO: Stall ended before state dump start",
                "INFO: NMI handler",
                // Kernel headers always have a space after the colon.
                "INFO:[^ ]",
                // Android drivers log `INFO: DRIVER: func: message`.
                "INFO: [A-Z0-9-]+: [a-z0-9_]+: ",
                "_INFO::",
                "INFO: sys_.* is not present in /proc/kallsyms",
                "INFO: no syscalls can create resource",
                r"INFO: rcu_(?:preempt|sched|bh) detected expedited stalls on CPUs/tasks: \{\}",
            ],
        ),
        oops(
            "Unable to handle kernel",
            Kind::PagingFault,
            vec![
                fmt(
                    "Unable to handle kernel (paging request|NULL pointer dereference|access to user memory)",
                    "BUG: unable to handle kernel {1} in {2}",
                    rip_trace(&[]),
                )
                .alt(&["bad-access in {2}"]),
            ],
            &[],
        ),
        oops(
            "general protection fault",
            Kind::Gpf,
            vec![
                fmt(
                    "general protection fault.*:",
                    "general protection fault in {1}",
                    rip_trace(&[]),
                )
                .alt(&["bad-access in {1}"]),
            ],
            &[r"general protection fault .* error:\d+ in "],
        ),
        oops(
            "stack segment: ",
            Kind::Gpf,
            vec![
                fmt("stack segment: 0000", "stack segment fault in {1}", rip_trace(&[]))
                    .alt(&["bad-access in {1}"]),
            ],
            &[],
        ),
        oops(
            "Kernel panic",
            Kind::Panic,
            vec![
                fmt(
                    "Kernel panic - not syncing: stack-protector:",
                    "kernel panic: stack is corrupted in {1}",
                    None,
                )
                .report("Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {{FUNC}}")
                .no_stack(),
                fmt(
                    "Kernel panic - not syncing: stack-protector:",
                    "kernel panic: stack is corrupted in {1}",
                    trace(&["stack_chk"]),
                )
                .report("Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+"),
                fmt(
                    "Kernel panic - not syncing: corrupted stack end",
                    "kernel panic: corrupted stack end in {1}",
                    stack(
                        vec![line(CALL_TRACE), Part::Trace],
                        &["schedule", "retint_kernel"],
                        Extractor::Stall,
                    ),
                )
                .report("Kernel panic - not syncing: corrupted stack end detected inside scheduler")
                .alt(&["stack-overflow in {1}"]),
                fmt(
                    "Kernel panic - not syncing: kernel stack overflow",
                    "kernel stack overflow in {1}",
                    stack(
                        vec![line(CALL_TRACE), Part::Trace],
                        &[],
                        Extractor::Stall,
                    ),
                )
                .alt(&["stack-overflow in {1}"]),
                fmt(
                    "Kernel panic - not syncing: Attempted to kill init!",
                    "kernel panic: Attempted to kill init!",
                    None,
                )
                .no_stack(),
                fmt(
                    "Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+",
                    "kernel panic: Couldn't open N_TTY ldisc",
                    None,
                )
                .no_stack(),
                // Printed after another report: seeing it as the title means
                // the real report was lost.
                fmt(
                    "Kernel panic - not syncing: Fatal exception",
                    "kernel panic: Fatal exception",
                    None,
                )
                .corrupted(),
                fmt(
                    "Kernel panic - not syncing: panic_on_warn set",
                    "kernel panic: panic_on_warn set",
                    None,
                )
                .corrupted(),
                fmt(
                    "Kernel panic - not syncing: hung_task: blocked tasks",
                    "kernel panic: hung_task: blocked tasks",
                    None,
                )
                .corrupted(),
                fmt("Kernel panic - not syncing: (.*)", "kernel panic: {1}", None).no_stack(),
            ],
            &[],
        ),
        oops(
            "PANIC: double fault",
            Kind::Panic,
            vec![fmt(
                "PANIC: double fault",
                "PANIC: double fault in {1}",
                stack(vec![Part::Rip], &[], Extractor::First),
            )],
            &[],
        ),
        oops(
            "kernel BUG",
            Kind::Bug,
            vec![
                fmt(
                    "kernel BUG at mm/usercopy.c",
                    "BUG: bad usercopy in {1}",
                    trace(&["usercopy", "__check"]),
                ),
                fmt(
                    "kernel BUG at lib/list_debug.c",
                    "BUG: corrupted list in {1}",
                    trace(&[]),
                ),
                fmt("kernel BUG at (.*)", "kernel BUG in {2}", rip_trace(&["^skb_"])),
                fmt("kernel BUG (.*)", "kernel BUG {1}", None).corrupted(),
            ],
            &[],
        ),
        oops(
            "Kernel BUG",
            Kind::Bug,
            vec![fmt("Kernel BUG (.*)", "kernel BUG {1}", None)],
            &[],
        ),
        oops(
            "BUG kmalloc-",
            Kind::Kasan,
            vec![fmt(
                "BUG kmalloc-.*: Object already free",
                "BUG: Object already free",
                None,
            )],
            &[],
        ),
        oops(
            "divide error:",
            Kind::Bug,
            vec![fmt("divide error: ", "divide error in {1}", rip_trace(&[]))],
            &[],
        ),
        oops(
            "invalid opcode:",
            Kind::Bug,
            vec![fmt("invalid opcode: ", "invalid opcode in {1}", rip_trace(&[]))],
            &[],
        ),
        oops(
            "UBSAN:",
            Kind::Ubsan,
            vec![
                fmt(
                    "UBSAN: Undefined behaviour in",
                    "UBSAN: undefined-behaviour in {1}",
                    trace(&["ubsan", "overflow"]),
                ),
                fmt(
                    "UBSAN: array-index-out-of-bounds in",
                    "UBSAN: array-index-out-of-bounds in {1}",
                    trace(&["ubsan", "overflow"]),
                ),
                fmt("UBSAN: (.*?) in", "UBSAN: {1} in {2}", trace(&["ubsan", "overflow"])),
            ],
            &[],
        ),
        oops(
            "Booting the kernel.",
            Kind::Other,
            vec![fmt("^Booting the kernel", "unexpected kernel reboot", None).no_stack()],
            // The boot banner echoed back inside a mount option error.
            &["Unknown parameter", "Parsing ELF|Decompressing Linux"],
        ),
        oops(
            "unregister_netdevice: waiting for",
            Kind::HungTask,
            vec![
                fmt(
                    "unregister_netdevice: waiting for (?:.*) to become free",
                    "unregister_netdevice: waiting for DEV to become free",
                    None,
                )
                .no_stack(),
            ],
            &[],
        ),
        oops(
            "Internal error:",
            Kind::Bug,
            vec![fmt("Internal error:", "Internal error in {1}", rip_trace(&[]))],
            &[],
        ),
        oops(
            "Unhandled fault:",
            Kind::PagingFault,
            vec![fmt("Unhandled fault:", "Unhandled fault in {1}", rip_trace(&[]))],
            &[],
        ),
        oops(
            "Alignment trap:",
            Kind::Bug,
            vec![fmt("Alignment trap:", "Alignment trap in {1}", rip_trace(&[]))],
            &[],
        ),
        oops(
            "detected hard LOCKUP on cpu",
            Kind::HardLockup,
            vec![fmt(
                "detected hard LOCKUP on cpu",
                "BUG: hard lockup in {1}",
                stack(
                    vec![Part::Rip, line(CALL_TRACE), Part::Trace],
                    &[],
                    Extractor::Stall,
                ),
            )
            .alt(&["stall in {1}"])],
            &[],
        ),
        oops(
            "VFS: Close: file count is 0",
            Kind::Bug,
            vec![
                fmt(
                    "VFS: Close: file count is 0",
                    "VFS: Close: file count is zero (use-after-free)",
                    None,
                )
                .no_stack(),
            ],
            &[],
        ),
        // The Go runtime of a test program crashed (syzkaller's executor).
        oops(
            "fatal error: runtime",
            Kind::Other,
            vec![fmt("fatal error: runtime", "go runtime error", None).no_stack()],
            &[],
        ),
        oops(
            "SYZFAIL:",
            Kind::Other,
            vec![fmt("SYZFAIL:(.*)", "SYZFAIL:{1}", None).no_stack()],
            &[],
        ),
    ]
}
