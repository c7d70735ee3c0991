use clap::Parser;

fn main() {
    let cli = tracer::cli::Cli::parse();
    match tracer::commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One line: the cause chain joined, so that the fix it names is visible.
            let message = format!("{e:#}").replace('\n', " ");
            eprintln!("tracer: error: {message}");
            std::process::exit(1);
        }
    }
}
