//! `tracer top --pid PID` (or `--name`): a live terminal view of where a running Python spends
//! its time, refreshed every second: the hottest lines (with their source text) and functions,
//! self and total, and in a header the rate, errors and missed ticks.
//!
//! One ordinary session samples the target (never writing to it, nothing written to disk);
//! its results are taken at every refresh as `--flush-every` takes them, and the tables are
//! drawn from their whole stacks ([`view`]). Keys: `q` quit, `p` pause the view, `s` sort
//! key, `t` thread, `v` since the start or over the last refresh.

pub mod view;

use super::StopSignals;
use crate::cli::{TargetArgs, TopArgs};
use crate::session::sampler::{LiveCounters, SamplerStats};
use crate::session::{self, SessionOptions, SessionResult};
use crate::source::{SourceText, Sources};
use crate::target::attach;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::Frame;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use view::SortKey;

/// How long a key is waited for between checks for new results.
const KEY_POLL: Duration = Duration::from_millis(100);

/// `tracer top`: a live view of what the target runs, until `q` or its exit.
pub fn top_command(args: &TopArgs) -> anyhow::Result<i32> {
    if !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "tracer top draws in a terminal, and stdout is not one: run it in a terminal, or \
             record with `tracer attach --format json` and read the results with `tracer report`"
        );
    }
    let signals = StopSignals::install()?;
    let target = TargetArgs {
        pid: args.pid,
        name: args.name.clone(),
        follow: false,
        subprocesses: false,
        max_processes: 1,
        wait: args.wait,
    };
    let pid = target.select(&signals.stop)?;
    let attached = if args.wait.is_some() {
        attach::attach_when_ready(pid, false, args.reader, Duration::from_secs(10))?
    } else {
        attach::attach_with(pid, false, args.reader)?
    };
    let version = attached.version;
    let info = attached.info.clone();
    let options = SessionOptions {
        rate_hz: args.rate,
        duration: None,
        filter: Default::default(),
        flush_every: Some(Duration::from_secs_f64(args.refresh)),
        function: None,
        max_cpu_percent: None,
    };
    let (tx, rx) = crossbeam_channel::unbounded::<SessionResult>();
    let stop = signals.stop.clone();
    let sampling = std::thread::Builder::new()
        .name("tracer-top".into())
        .spawn(move || {
            let live = Arc::new(LiveCounters::default());
            let last = session::sample_with_flushes(
                attached,
                &options,
                stop,
                &live,
                &mut |_| {},
                &mut |flush| {
                    let _ = tx.send(flush);
                },
            );
            if let Ok(last) = last {
                let _ = tx.send(last);
            }
        })?;

    let mut screen = Screen {
        title: format!(
            "tracer top: pid {pid} (Python {}) {}",
            info.python_version, info.command_line
        ),
        rate: args.rate,
        sources: Sources::of_process(pid, version),
        source_lines: HashMap::new(),
        latest: None,
        previous: None,
        sort: SortKey::SelfHits,
        thread: None,
        since_start: true,
        paused: false,
        ended: false,
    };
    let mut terminal = ratatui::init();
    let drawn = (|| -> anyhow::Result<()> {
        loop {
            if !screen.paused {
                while let Ok(result) = rx.try_recv() {
                    screen.previous = screen.latest.replace(result);
                }
            }
            screen.ended = sampling.is_finished();
            terminal.draw(|frame| screen.draw(frame))?;
            if signals.stop.load(Ordering::Relaxed) && !screen.ended {
                break;
            }
            if event::poll(KEY_POLL)? {
                if let Event::Key(key) = event::read()? {
                    if key.kind != KeyEventKind::Press {
                        continue;
                    }
                    match key.code {
                        KeyCode::Char('q') | KeyCode::Esc => break,
                        KeyCode::Char('p') => screen.paused = !screen.paused,
                        KeyCode::Char('s') => screen.sort = screen.sort.next(),
                        KeyCode::Char('v') => screen.since_start = !screen.since_start,
                        KeyCode::Char('t') => screen.next_thread(),
                        _ => {}
                    }
                }
            } else if signals.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(())
    })();
    ratatui::restore();
    signals.stop.store(true, Ordering::Relaxed);
    let _ = sampling.join();
    drawn?;
    Ok(0)
}

/// What is on the screen, and the state of the keys.
struct Screen {
    title: String,
    rate: f64,
    sources: Sources,
    source_lines: HashMap<String, Option<Vec<String>>>,
    latest: Option<SessionResult>,
    previous: Option<SessionResult>,
    sort: SortKey,
    thread: Option<(u32, u64)>,
    since_start: bool,
    paused: bool,
    ended: bool,
}

impl Screen {
    /// The stacks the tables are drawn from: since the start, or gained since the refresh
    /// before.
    fn stacks(&self) -> crate::aggregate::model::Stacks {
        let stacks = |r: &Option<SessionResult>| {
            r.as_ref()
                .and_then(|r| r.results.stacks.clone())
                .unwrap_or_default()
        };
        if self.since_start {
            stacks(&self.latest)
        } else {
            view::since(&stacks(&self.latest), &stacks(&self.previous))
        }
    }

    /// All threads, then each thread seen in turn.
    fn next_thread(&mut self) {
        let threads = view::threads(&self.stacks());
        self.thread = match self.thread {
            None => threads.first().copied(),
            Some(current) => threads
                .iter()
                .skip_while(|t| **t != current)
                .nth(1)
                .copied(),
        };
    }

    fn source_line(&mut self, file: &str, line: u32) -> String {
        let sources = &self.sources;
        let lines = self.source_lines.entry(file.to_owned()).or_insert_with(|| {
            sources
                .read(file)
                .ok()
                .map(|bytes| SourceText::decode(&bytes).lines())
        });
        lines
            .as_ref()
            .and_then(|lines| lines.get(line.checked_sub(1)? as usize))
            .map(|text| crate::source::expand_tabs(text.trim()))
            .unwrap_or_default()
    }

    fn header(&self) -> Vec<Line<'static>> {
        let empty = SamplerStats::default();
        let stats = self.latest.as_ref().map_or(&empty, |r| &r.info.stats);
        let before = self.previous.as_ref().map_or(&empty, |r| &r.info.stats);
        let seconds = stats.duration_s - before.duration_s;
        let achieved = if seconds > 0.0 {
            (stats.samples - before.samples.min(stats.samples)) as f64 / seconds
        } else {
            0.0
        };
        let thread = match self.thread {
            None => "all".to_owned(),
            Some((pid, thread)) => format!("{thread:#x} of pid {pid}"),
        };
        let state = match (self.ended, self.paused) {
            (true, _) => "  [target exited: q to quit]",
            (false, true) => "  [paused]",
            _ => "",
        };
        vec![
            Line::styled(
                self.title.clone(),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Line::from(format!(
                "rate {achieved:.0}/s of {:.0} Hz · samples {} · errors {} · missed {} · \
                 truncated {} · {:.1} s",
                self.rate,
                stats.samples,
                stats.errors,
                stats.missed,
                stats.truncated,
                stats.duration_s
            )),
            Line::from(format!(
                "view: {} · sort: {} · thread: {thread}{state}",
                if self.since_start {
                    "since start"
                } else {
                    "last refresh"
                },
                self.sort.name()
            )),
        ]
    }

    fn draw(&mut self, frame: &mut Frame) {
        let [header, lines_area, functions_area, keys] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Percentage(60),
            Constraint::Min(4),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        frame.render_widget(Paragraph::new(self.header()), header);
        let tables = view::tables(&self.stacks(), self.thread, self.sort);
        let percent = |n: u64| {
            if tables.samples == 0 {
                0.0
            } else {
                100.0 * n as f64 / tables.samples as f64
            }
        };
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let shown = lines_area.height.saturating_sub(3) as usize;
        let line_rows: Vec<Row> = tables
            .lines
            .iter()
            .take(shown)
            .map(|r| {
                Row::new(vec![
                    format!("{:5.1}%", percent(r.self_samples)),
                    format!("{:5.1}%", percent(r.total_samples)),
                    format!("{}:{}", r.file, r.line),
                    self.source_line(&r.file, r.line),
                ])
            })
            .collect();
        let widths = [
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Percentage(45),
            Constraint::Fill(1),
        ];
        frame.render_widget(
            Table::new(line_rows, widths)
                .header(Row::new(vec!["self", "total", "line", "source"]).style(bold))
                .block(Block::bordered().title(" lines ")),
            lines_area,
        );
        let shown = functions_area.height.saturating_sub(3) as usize;
        let function_rows: Vec<Row> = tables
            .functions
            .iter()
            .take(shown)
            .map(|r| {
                Row::new(vec![
                    format!("{:5.1}%", percent(r.self_samples)),
                    format!("{:5.1}%", percent(r.total_samples)),
                    r.function.clone(),
                    r.file.clone(),
                ])
            })
            .collect();
        frame.render_widget(
            Table::new(function_rows, widths)
                .header(Row::new(vec!["self", "total", "function", "file"]).style(bold))
                .block(Block::bordered().title(" functions ")),
            functions_area,
        );
        frame.render_widget(
            Paragraph::new(
                "q quit · p pause · s sort (self, total, name) · t thread · v since start / last refresh",
            ),
            keys,
        );
    }
}
