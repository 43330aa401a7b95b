//! The `liveguard` command line: parses flags, calls the library, maps outcomes to exit codes
//! (0 ok, 1 finished but a check failed, 2 error).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use liveguard::cli::{self, InputFormat};
use liveguard::rules::{self, RuleSet};

#[derive(Parser)]
#[command(
    name = "liveguard",
    version,
    about = "Flags genuine complaints and malicious attacks in live-commerce comments"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify comments from stdin: one JSON verdict per line on stdout.
    Classify {
        /// Rule packs directory.
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
        /// Input: JSON lines with at least `text`, or plain text lines.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: InputFormat,
    },
    /// Validate and debug rule packs.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate every pack and run every [[example]].
    Check {
        /// Rule packs directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
    /// Show the normalized text and every rule that fires for TEXT (a dry run).
    Explain {
        /// The comment to explain.
        text: String,
        /// Rule packs directory.
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("liveguard: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load(dir: &Path) -> anyhow::Result<RuleSet> {
    liveguard::normalize::warm_up();
    rules::load_dir(dir).with_context(|| format!("rules in {}", dir.display()))
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Classify { rules, format } => {
            let set = load(&rules)?;
            let stdout = io::stdout();
            let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let stats = cli::classify_stream(&set, io::stdin().lock(), &mut out, &mut io::stderr(), format)
                .context("classify")?;
            out.flush()?;
            Ok(if stats.failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => {
            let set = match rules::load_dir(&dir) {
                Ok(set) => set,
                Err(errs) => {
                    for e in &errs.0 {
                        eprintln!("{e}");
                    }
                    eprintln!(
                        "liveguard rules check: {} error(s) in {}",
                        errs.0.len(),
                        dir.display()
                    );
                    return Ok(ExitCode::from(2));
                }
            };
            let (ran, failures) = cli::check_examples(&set);
            for f in &failures {
                println!("{}", f.message);
            }
            println!(
                "{} pack(s), {} groups, {} terms; {} of {} examples pass",
                set.packs.len(),
                set.groups().len(),
                set.term_count,
                ran - failures.len(),
                ran
            );
            Ok(if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Rules {
            command: RulesCommand::Explain { text, rules },
        } => {
            let set = load(&rules)?;
            cli::explain(&set, &text, &mut io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
