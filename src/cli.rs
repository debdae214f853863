//! The command-line edge: reads inputs, calls the pipeline stages, prints.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::console::{self, Analysis, Crash, Options};

/// Logs go to stderr; `LOREBOT_LOG` (or `RUST_LOG`) sets the filter.
pub fn init_logging() {
    let filter = std::env::var("LOREBOT_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(io::stderr)
        .init();
}

fn analyze_path(path: &Path, opts: Options) -> anyhow::Result<Analysis> {
    if path == Path::new("-") {
        return console::analyze_reader(io::stdin().lock(), opts)
            .context("cannot read standard input");
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    console::analyze_reader(file, opts).with_context(|| format!("cannot read {}", path.display()))
}

/// `lorebot analyze`: exit 0 when every input was analyzed, crash or not;
/// 2 when an input could not be read (the others are still analyzed).
pub fn analyze(
    files: &[PathBuf],
    json: bool,
    hz: Option<u32>,
    mail: bool,
) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut failed = false;
    for (i, path) in files.iter().enumerate() {
        let opts = Options {
            hz,
            mail: mail.then_some(true),
        };
        let analysis = match analyze_path(path, opts) {
            Ok(a) => a,
            Err(e) => {
                out.flush()?;
                eprintln!("error: {e:#}");
                failed = true;
                continue;
            }
        };
        tracing::info!(file = %path.display(), crashes = analysis.crashes.len(), "analyzed");
        if json {
            serde_json::to_writer(&mut out, &analysis)?;
            writeln!(out)?;
        } else {
            if i > 0 {
                writeln!(out)?;
            }
            out.write_all(render_text(&path.display().to_string(), &analysis).as_bytes())?;
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Lines of a report shown in the human output.
const REPORT_LINES: usize = 40;

fn render_text(name: &str, a: &Analysis) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{name}: {}", summary(a));
    for (i, c) in a.crashes.iter().enumerate() {
        let _ = writeln!(s);
        render_crash(&mut s, i, a.crashes.len(), c);
    }
    let st = &a.stats;
    if st.stall_reports > 0 {
        let _ = writeln!(s);
        let _ = write!(s, "stalls: {} report(s)", st.stall_reports);
        if let Some(t) = st.first_stall_time_s {
            let _ = write!(s, ", first at {t:.2} s");
        }
        if let Some(j) = st.longest_stall_jiffies {
            let _ = write!(s, ", longest {j} jiffies");
        }
        if let Some(sec) = st.longest_stall_s {
            let _ = write!(s, " ({sec:.1} s");
            if let (Some(hz), Some(src)) = (st.hz, st.hz_source) {
                let _ = write!(s, " at HZ={hz}, {src}");
            }
            let _ = write!(s, ")");
        }
        let _ = writeln!(s);
        if st.livelock {
            let _ = writeln!(
                s,
                "a grace period stayed stalled across consecutive reports (livelock)"
            );
        }
        if st.stall_cleared {
            let _ = writeln!(
                s,
                "a later report names a new grace period: an earlier stall cleared"
            );
        }
    }
    s
}

fn summary(a: &Analysis) -> String {
    match a.crashes.len() {
        0 => "no crash".to_owned(),
        1 => "1 crash".to_owned(),
        n => format!("{n} crashes"),
    }
}

fn render_crash(s: &mut String, i: usize, n: usize, c: &Crash) {
    let _ = writeln!(s, "crash {}/{n}: {}", i + 1, c.title);
    let _ = write!(s, "  kind:    {}", c.kind.as_str());
    if c.corrupted {
        let _ = write!(s, " (corrupted report)");
    }
    let _ = writeln!(s);
    let _ = write!(s, "  where:   lines {}-{}", c.start_line, c.end_line);
    if let Some(t) = c.time_s {
        let _ = write!(s, ", console time {t:.2} s");
    }
    let _ = writeln!(s);
    if let Some(f) = &c.guilty_frame {
        let _ = writeln!(s, "  frame:   {f}");
    }
    if let Some(st) = &c.stall {
        let mut parts = Vec::new();
        if let Some(f) = &st.flavor {
            let how = if st.self_detected {
                "self-detected".to_owned()
            } else if let Some(by) = st.detected_by {
                format!("detected by CPU {by}")
            } else {
                "detected".to_owned()
            };
            parts.push(format!(
                "{f} {how}{}",
                if st.expedited { " (expedited)" } else { "" }
            ));
        }
        if !st.cpus.is_empty() {
            let cpus: Vec<String> = st.cpus.iter().map(u32::to_string).collect();
            parts.push(format!("CPU {}", cpus.join(",")));
        }
        if let Some(t) = st.ticks_this_gp {
            parts.push(format!("{t} ticks this GP"));
        }
        if let Some(j) = st.jiffies {
            parts.push(format!("t={j} jiffies"));
        }
        if let Some(g) = st.g {
            parts.push(format!("g={g}"));
        }
        if let Some(sec) = st.seconds {
            parts.push(format!("{sec:.1} s"));
        }
        if let Some(j) = st.kthread_starved_jiffies {
            parts.push(format!("kthread starved {j} jiffies"));
        }
        let _ = writeln!(s, "  stall:   {}", parts.join(", "));
        if let Some(t) = &st.task {
            let _ = write!(s, "  task:    {} (pid {})", t.comm, t.pid);
            if let Some(r) = &st.rip_func {
                let _ = write!(s, ", RIP in {r}");
            }
            let _ = writeln!(s);
        }
    }
    let lines: Vec<&str> = c.report.lines().collect();
    for l in lines.iter().take(REPORT_LINES) {
        let _ = writeln!(s, "  | {l}");
    }
    if lines.len() > REPORT_LINES {
        let _ = writeln!(s, "  | ... ({} more lines)", lines.len() - REPORT_LINES);
    }
}
