//! The `tracer` binary: parse the arguments ([`tracer::cli`]) and enter the command's module
//! (`tracer attach` → [`tracer::commands::attach`], docs/ARCHITECTURE.md follows it).

use clap::Parser;
use tracer::cli::{Cli, Commands};
use tracer::commands::{self, attach, dump, merge, report, run, snapshot, top};

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One line: the cause chain joined, so that the fix it names is visible.
            let message = format!("{e:#}").replace('\n', " ");
            eprintln!("tracer: error: {message}");
            std::process::exit(1);
        }
    }
}

/// Run the parsed command; the returned code is the process's exit status.
fn run(cli: Cli) -> anyhow::Result<i32> {
    if matches!(
        cli.command,
        Commands::Report(_) | Commands::Dump { .. } | Commands::Merge { .. }
    ) {
        commands::end_quietly_on_a_closed_pipe();
    }
    match cli.command {
        Commands::Attach { target, trace } => attach::attach_command(&target, &trace),
        Commands::Run { trace, command } => run::run_command(&trace, &command),
        Commands::KeepWatch => Ok(tracer::target::exit_watch::keeper::keep()),
        Commands::Top(top) => top::top_command(&top),
        Commands::Dump {
            pid,
            locals,
            json,
            blocking,
        } => {
            let dump = dump::dump(pid, locals, blocking)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&dump)?);
            } else {
                print!("{}", dump::to_text(&dump));
            }
            Ok(0)
        }
        Commands::Report(args) => report::report_command(&args),
        Commands::Snapshot {
            pid,
            output,
            format,
            evidence_only,
            plugin,
            filters,
        } => snapshot::snapshot_command(
            pid,
            output.as_ref(),
            (format, plugin.write_options()),
            tracer::snapshot::SnapshotOptions { evidence_only },
            &filters,
        ),
        Commands::Merge {
            inputs,
            output,
            format,
            plugin,
            filters,
            paths,
        } => merge::merge_command(
            &inputs,
            &output,
            (format, plugin.write_options()),
            &filters,
            &paths.path_map,
        ),
    }
}
