//! The full-screen layout of `top`: a block of labelled lines, a fill
//! gauge, and a table of the busiest topics. Only layout and colour: every
//! number and its spelling come from `ops::top`.

use std::time::Duration;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Gauge, Paragraph, Row, Table};
use ratatui::Frame;
use shopify_events_core::ops::counted;
use shopify_events_core::ops::format_size;
use shopify_events_core::ops::top::{
    fmt_age, fmt_bytes_rate, fmt_count, fmt_estimate, fmt_latency, fmt_rate, Estimate,
    ProcessState, ProcessView, RateBasis, TopView,
};

const LABEL: usize = 10;

pub fn draw(frame: &mut Frame, view: Option<&TopView>, interval: Duration) {
    let Some(view) = view else {
        frame.render_widget(Paragraph::new("reading…"), frame.area());
        return;
    };
    let mut time = view.line();
    time.truncate(time.find(' ').unwrap_or(time.len()));
    let block = Block::bordered()
        .title(Line::from(format!(" shopify-events top · queue {} ", view.key)).bold())
        .title(
            Line::from(format!(
                " {} · every {} · q quits ",
                time.trim_start_matches("time="),
                fmt_age(interval.as_secs_f64())
            ))
            .right_aligned(),
        );
    let inner = block.inner(frame.area());
    frame.render_widget(block, frame.area());

    let lines = summary(view);
    let topic_rows = view
        .topics
        .as_ref()
        .map_or(1, |t| t.top.len() + usize::from(t.rest.is_some()) + 1);
    let [top, gauge, body, topics] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(lines.len() as u16),
        Constraint::Min(topic_rows.min(u16::MAX as usize) as u16),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(queue_line(view)), top);
    draw_gauge(frame, view, gauge);
    frame.render_widget(Paragraph::new(lines), body);
    draw_topics(frame, view, topics);
}

fn label(text: &str) -> Span<'static> {
    Span::styled(format!("{text:<LABEL$}"), Style::new().bold())
}

fn queue_line(view: &TopView) -> Line<'static> {
    let Some(q) = &view.queue else {
        let why = view.queue_error.clone().unwrap_or_default();
        return Line::from(vec![label("Queue"), Span::raw(why).red()]);
    };
    let oldest = match q.oldest_age {
        Some(age) => format!("oldest {} ({})", fmt_age(age), q.oldest_source),
        None => format!("oldest - ({})", q.oldest_source),
    };
    Line::from(vec![
        label("Queue"),
        Span::raw(format!(
            "{} · {} of {} · {oldest}",
            counted(q.depth, "event"),
            format_size(q.bytes),
            format_size(q.capacity)
        )),
    ])
}

fn draw_gauge(frame: &mut Frame, view: &TopView, area: Rect) {
    let [name, bar] =
        Layout::horizontal([Constraint::Length(LABEL as u16), Constraint::Min(10)]).areas(area);
    frame.render_widget(Paragraph::new(label("Fill")), name);
    let Some(q) = &view.queue else {
        return;
    };
    let colour = match q.fill_percent {
        f if f >= 80.0 => Color::Red,
        f if f >= 50.0 => Color::Yellow,
        _ => Color::Green,
    };
    let gauge = Gauge::default()
        .ratio((q.fill_percent / 100.0).clamp(0.0, 1.0))
        .label(format!("{:.1} %", q.fill_percent))
        .gauge_style(Style::new().fg(colour).bg(Color::Black));
    frame.render_widget(gauge, bar);
}

fn or_dash(value: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), fmt)
}

fn summary(view: &TopView) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if let Some(spool) = &view.spool {
        lines.push(Line::from(vec![
            label("Spool"),
            Span::raw(format!(
                "{} · {} · oldest {}",
                counted(spool.segments, "segment"),
                format_size(spool.bytes),
                fmt_age(spool.oldest_age)
            )),
        ]));
    }
    let r = &view.rates;
    let basis = match r.basis {
        RateBasis::Drain => format!(
            "over {}, from the drain's counters",
            fmt_age(r.window_seconds)
        ),
        RateBasis::Queue => "the queue's net change: no drain up".to_owned(),
        RateBasis::None => "one reading so far".to_owned(),
    };
    // Bytes are known only from a drain that counts them (per topic).
    let pair = |events: Option<f64>, bytes: Option<f64>| match bytes {
        Some(bytes) => format!("{} · {}", or_dash(events, fmt_rate), fmt_bytes_rate(bytes)),
        None => or_dash(events, fmt_rate),
    };
    lines.push(Line::from(vec![
        label("In"),
        Span::raw(pair(r.in_events, r.in_bytes)),
        Span::raw(format!("  ({basis})")).dark_gray(),
    ]));
    lines.push(Line::from(vec![
        label("Out"),
        Span::raw(format!(
            "{} · delivered {}",
            pair(r.out_events, r.out_bytes),
            or_dash(r.delivered_events, fmt_rate)
        )),
    ]));
    let e = &view.estimates;
    let full = match e.time_to_full {
        Estimate::Never => "never (not growing)".to_owned(),
        other => fmt_estimate(other),
    };
    let empty = match e.time_to_drain {
        Estimate::Never => "never (not shrinking)".to_owned(),
        other => fmt_estimate(other),
    };
    let full_style = match e.time_to_full {
        Estimate::Seconds(s) if s < 600.0 => Style::new().red().bold(),
        Estimate::Seconds(_) => Style::new().yellow(),
        _ => Style::new(),
    };
    lines.push(Line::from(vec![
        label("Full in"),
        Span::styled(full, full_style),
        Span::raw(format!(
            " · if the drain stopped: {}",
            fmt_estimate(e.full_if_drain_stops)
        )),
    ]));
    lines.push(Line::from(vec![label("Empty in"), Span::raw(empty)]));
    if let Some(d) = &view.delivery {
        let dead = Span::raw(format!(
            "dead letters {} ({})",
            fmt_count(d.dead_lettered),
            or_dash(d.dead_letter_rate, fmt_rate)
        ));
        lines.push(Line::from(vec![
            label("Delivery"),
            Span::raw(format!(
                "p50 {} · p99 {} · in flight {} · retries {} ({}) · ",
                or_dash(d.p50, fmt_latency),
                or_dash(d.p99, fmt_latency),
                d.in_flight,
                fmt_count(d.retried),
                or_dash(d.retry_rate, fmt_rate),
            )),
            if d.dead_lettered > 0 {
                dead.red()
            } else {
                dead
            },
        ]));
    }
    if let Some(a) = &view.accounting {
        let text = Span::raw(format!("gaps {} · duplicates {}", a.gaps, a.duplicates));
        lines.push(Line::from(vec![
            label("Loss"),
            if a.gaps > 0 { text.red().bold() } else { text },
        ]));
    }
    lines.push(process_line("Drain", &view.drain));
    lines.push(process_line("Proxy", &view.proxy));
    if let Some(p) = &view.proxy_traffic {
        lines.push(Line::from(vec![
            label(""),
            Span::raw(format!(
                "{} connections · {} {} · backpressured {} · nacked {} · queue errors {}",
                p.connections_open,
                or_dash(p.events, fmt_rate),
                or_dash(p.bytes, fmt_bytes_rate),
                p.backpressured,
                p.frames_nacked,
                p.queue_errors
            )),
        ]));
    }
    lines
}

fn process_line(name: &str, p: &ProcessView) -> Line<'static> {
    let state = match p.state {
        ProcessState::Up => Span::raw("up").green().bold(),
        ProcessState::Stale => Span::raw("stale").yellow().bold(),
        ProcessState::Down => Span::raw("down").red().bold(),
    };
    let mut facts = Vec::new();
    if let Some(pid) = p.pid {
        facts.push(format!("pid {pid}"));
    }
    if let (ProcessState::Up, Some(age)) = (p.state, p.snapshot_age) {
        facts.push(format!("snapshot {} old", fmt_age(age)));
    }
    facts.push(p.detail.clone());
    Line::from(vec![
        label(name),
        state,
        Span::raw(format!(" · {}", facts.join(" · "))),
    ])
}

fn draw_topics(frame: &mut Frame, view: &TopView, area: Rect) {
    let Some(topics) = &view.topics else {
        let why = if view.delivery.is_some() {
            "Topics    (the drain reports no per-topic counts yet)"
        } else {
            "Topics    (need a running drain)"
        };
        frame.render_widget(Paragraph::new(why).dark_gray(), area);
        return;
    };
    let rows = topics.top.iter().chain(&topics.rest).map(|t| {
        Row::new(vec![
            t.topic.clone(),
            fmt_rate(t.events),
            fmt_bytes_rate(t.bytes),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(40),
            Constraint::Length(10),
            Constraint::Length(14),
        ],
    )
    .header(Row::new(vec!["Topic", "events", "bytes"]).bold())
    .column_spacing(2);
    frame.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use shopify_events_core::ops::top::{Head, QueueReading, Sample, Top};
    use shopify_events_core::ops::{Down, Liveness};

    use super::*;

    fn view() -> TopView {
        let mut top = Top::new(0x5345_5600);
        for at in [1.0, 2.0] {
            top.observe(Sample {
                at,
                queue: Ok(QueueReading {
                    depth: 3,
                    bytes: 300,
                    capacity: 1000,
                    head: Head::EmittedAt(0),
                }),
                drain: Liveness::Down(Down::NoSnapshot),
                proxy: Liveness::Down(Down::NoSnapshot),
            });
        }
        top.view(8).expect("a view after two readings")
    }

    #[test]
    fn any_terminal_size_down_to_nothing_draws_without_a_panic() {
        let view = view();
        let sizes = (0..=12u16)
            .flat_map(|w| (0..=12u16).map(move |h| (w, h)))
            .chain([(1, 200), (200, 1), (300, 2), (2, 300)]);
        for (width, height) in sizes {
            let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
            for shown in [None, Some(&view)] {
                terminal
                    .draw(|frame| draw(frame, shown, Duration::from_secs(1)))
                    .unwrap_or_else(|e| panic!("{width}x{height}: {e}"));
            }
        }
    }
}
