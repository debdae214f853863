use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A kernel patch test bot: follows lore threads, tests the patches posted
/// there in QEMU, and replies with a verdict.
#[derive(Parser)]
#[command(name = "lorebot", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Find crash reports and stalls in kernel console logs.
    Analyze {
        /// Print one JSON object per input file, one per line.
        #[arg(long)]
        json: bool,
        /// Kernel HZ, to turn stall jiffies into seconds (inferred when absent).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
        hz: Option<u32>,
        /// Treat the input as a log pasted into a mail: undo line wrapping and
        /// quoting (detected from mail headers when not given).
        #[arg(long)]
        mail: bool,
        /// Console logs; `-` reads standard input.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Follow lore archives.
    Lore {
        #[command(subcommand)]
        command: LoreCommand,
    },
    /// Show the patch series, trailers and #lorebot commands in a thread.
    Series {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        thread: lorebot::cli::ThreadArgs,
    },
    /// Apply a patch series to a tree with `git am -3`, in a worktree kept
    /// between runs (builds stay incremental). Exit status 1 when a patch
    /// does not apply.
    Apply(lorebot::cli::ApplyArgs),
    /// Build a job's kernel at a revision (cached by commit and config) and
    /// print the bzImage's path.
    Build(lorebot::cli::BuildArgs),
    /// Test the series in a thread with a job: apply, build both kernels,
    /// run base and patched until the statistics decide; print the reply.
    Test {
        #[command(flatten)]
        thread: lorebot::cli::ThreadArgs,
        /// The job file (jobs/*.yaml).
        #[arg(long, value_name = "JOB")]
        job: PathBuf,
        /// Where lorebot keeps its data (default: $XDG_DATA_HOME/lorebot).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// The bot's name and address, for From: and Tested-by:.
        #[arg(
            long,
            env = "LOREBOT_FROM",
            default_value = "lorebot <lorebot@localhost>"
        )]
        from: String,
    },
    /// Run the bot: follow the configured lists, test each proposed fix and
    /// `#lorebot test` request, and reply. Interrupted jobs resume.
    Watch {
        /// The configuration (lists, jobs, identity, delivery).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Go through once (sync, queue, test, reply) and exit.
        #[arg(long)]
        once: bool,
    },
    /// Show the bot's jobs, newest first: state, verdict, runs, reply.
    Status {
        /// The watch configuration whose data to show.
        #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        /// Where lorebot keeps its data (default: $XDG_DATA_HOME/lorebot).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Jobs to show at most.
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the patch queue: every series seen, its tests, runs, logs and
    /// replies, as HTML, JSON (/api/series) and an Atom feed; and GitHub's
    /// pull_request webhook when the config gives its secret.
    Serve {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The watch configuration whose data to serve.
        #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        /// Where lorebot keeps its data (default: $XDG_DATA_HOME/lorebot).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print the bot's finished tests as KCIDB JSON (schema v5.3), for
    /// submission to KernelCI.
    Export {
        /// KCIDB: a checkout and a build per arm, a test per run.
        #[arg(long, required = true)]
        kcidb: bool,
        /// The watch configuration (gives trees and log links).
        #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        /// Where lorebot keeps its data (default: $XDG_DATA_HOME/lorebot).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Boot a kernel with a job's reproducer N times and report the outcomes.
    Run {
        /// The job file (jobs/*.yaml).
        #[arg(long, value_name = "JOB")]
        job: PathBuf,
        /// The kernel image to boot (bzImage).
        #[arg(long, value_name = "BZIMAGE")]
        kernel: PathBuf,
        /// How many runs.
        #[arg(short = 'n', long = "runs", value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(1..=10_000))]
        runs: u32,
        /// Where console logs go (default: under the data dir).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print JSON (progress goes to stderr).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum LoreCommand {
    /// Mirror a list's public-inbox git epochs and ingest new messages.
    Sync {
        /// lore's base URL (https://lore.kernel.org, or file:// for a local archive).
        #[arg(long, value_name = "BASE")]
        url: String,
        /// The list's name on lore.
        #[arg(long, value_name = "NAME")]
        list: String,
        /// The database (default: $XDG_DATA_HOME/lorebot/lorebot.sqlite3).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// Where mirrors are kept (default: beside the database).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Reject mails larger than this many bytes.
        #[arg(long, value_name = "BYTES", default_value_t = lorebot::mail::DEFAULT_MAX_SIZE)]
        max_mail_size: usize,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    lorebot::cli::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Analyze {
            json,
            hz,
            mail,
            files,
        } => lorebot::cli::analyze(&files, json, hz, mail),
        Command::Lore {
            command:
                LoreCommand::Sync {
                    url,
                    list,
                    db,
                    data_dir,
                    max_mail_size,
                    json,
                },
        } => lorebot::cli::lore_sync(&url, &list, db, data_dir, max_mail_size, json),
        Command::Series { json, thread } => lorebot::cli::series(thread.source(), json),
        Command::Test {
            thread,
            job,
            data_dir,
            from,
        } => lorebot::cli::test(thread.source(), &job, data_dir.as_deref(), &from),
        Command::Watch { config, once } => lorebot::cli::watch(&config, once),
        Command::Status {
            config,
            data_dir,
            limit,
            json,
        } => lorebot::cli::status(config.as_deref(), data_dir.as_deref(), limit, json),
        Command::Serve {
            listen,
            config,
            data_dir,
        } => lorebot::cli::serve(listen, config.as_deref(), data_dir.as_deref()),
        Command::Export {
            kcidb: _,
            config,
            data_dir,
        } => lorebot::cli::export_kcidb(config.as_deref(), data_dir.as_deref()),
        Command::Apply(args) => lorebot::cli::apply(&args),
        Command::Build(args) => lorebot::cli::build(&args),
        Command::Run {
            job,
            kernel,
            runs,
            out,
            json,
        } => lorebot::cli::run(&job, &kernel, runs, out, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
