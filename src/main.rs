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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
