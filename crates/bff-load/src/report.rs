//! A load run's picture: latency percentiles over time and the latency
//! histogram, as one SVG (hand-drawn: two charts do not need a plotting
//! crate and its font stack), and an HTML page with the picture and the
//! numbers.

use std::fmt::Write as _;

use serde_json::Value;

use crate::bench::Summary;

const WIDTH: f64 = 920.0;
const HEIGHT: f64 = 300.0;
const PLOT: (f64, f64, f64, f64) = (50.0, 36.0, 380.0, 214.0); // left, top, width, height

/// The SVG of `summary`, titled `title`.
pub fn svg(title: &str, summary: &Summary) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">"##
    );
    let _ = write!(out, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let _ =
        write!(out, r##"<text x="10" y="14" font-size="13" font-weight="bold">{}</text>"##, escape(title));
    over_time(&mut out, summary, 0.0);
    histogram(&mut out, summary, 480.0);
    out.push_str("</svg>\n");
    out
}

/// Percentiles per second: p50, p90, p99 as lines, y in ms.
fn over_time(out: &mut String, summary: &Summary, dx: f64) {
    let (left, top, width, height) = (PLOT.0 + dx, PLOT.1, PLOT.2, PLOT.3);
    let seconds = (summary.timeline.iter().map(|t| t.0).max().unwrap_or(0) + 1) as f64;
    let top_ms = nice(summary.timeline.iter().map(|t| t.4).fold(0.0, f64::max).max(1.0));
    axes(out, left, top, width, height, "seconds into the run", top_ms, "ms");
    for (index, (label, colour)) in
        [("p50", "#2b8a3e"), ("p90", "#e67700"), ("p99", "#c92a2a")].iter().enumerate()
    {
        let points: Vec<String> = summary
            .timeline
            .iter()
            .map(|(second, _, p50, p90, p99)| {
                let value = [p50, p90, p99][index];
                let x = left + width * (*second as f64 + 0.5) / seconds;
                let y = top + height - height * (value / top_ms).min(1.0);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            out,
            r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        );
        let _ = write!(
            out,
            r##"<text x="{:.0}" y="{:.0}" fill="{colour}">{label}</text>"##,
            left + width - 90.0 + 30.0 * index as f64,
            top + 14.0
        );
    }
    let _ = write!(
        out,
        r##"<text x="{:.0}" y="{:.0}" text-anchor="end">{seconds:.0}</text>"##,
        left + width,
        top + height + 14.0
    );
}

/// Requests per latency bucket (log-spaced), as bars.
fn histogram(out: &mut String, summary: &Summary, dx: f64) {
    let (left, top, width, height) = (PLOT.0 + dx, PLOT.1, PLOT.2, PLOT.3);
    // Only the buckets from the first to the last non-empty one.
    let used: Vec<&(f64, u64)> = {
        let first = summary.histogram.iter().position(|b| b.1 > 0).unwrap_or(0);
        let last = summary.histogram.iter().rposition(|b| b.1 > 0).unwrap_or(0);
        summary.histogram[first..=last.max(first)].iter().collect()
    };
    let most = used.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    axes(out, left, top, width, height, "latency histogram: ms, bucket upper bound", most, "requests");
    let bar = width / used.len().max(1) as f64;
    for (i, (upper, count)) in used.iter().enumerate() {
        let h = height * (*count as f64 / most);
        let x = left + bar * i as f64;
        let _ = write!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#1971c2"><title>≤ {upper} ms: {count}</title></rect>"##,
            x + 2.0,
            top + height - h,
            bar - 4.0
        );
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.0}" text-anchor="middle">{upper}</text>"##,
            x + bar / 2.0,
            top + height + 14.0
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn axes(
    out: &mut String,
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    caption: &str,
    top_value: f64,
    unit: &str,
) {
    let _ = write!(
        out,
        r##"<path d="M{left},{top} V{:.1} H{:.1}" stroke="#333" fill="none"/>"##,
        top + height,
        left + width
    );
    for step in 1..=4 {
        let value = top_value * f64::from(step) / 4.0;
        let y = top + height - height * f64::from(step) / 4.0;
        let _ = write!(
            out,
            r##"<path d="M{left},{y:.1} H{:.1}" stroke="#ddd"/><text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + width,
            left - 4.0,
            y + 4.0,
            short(value)
        );
    }
    let _ = write!(
        out,
        r##"<text x="{:.0}" y="{:.0}" text-anchor="middle">{}</text><text x="{:.0}" y="{:.0}" text-anchor="end">{unit}</text>"##,
        left + width / 2.0,
        top + height + 30.0,
        escape(caption),
        left - 4.0,
        top - 6.0
    );
}

/// A round axis maximum at or above `value`.
fn nice(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= value {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn short(value: f64) -> String {
    if value >= 10.0 { format!("{value:.0}") } else { format!("{value:.1}") }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The HTML page of a report: the picture and the JSON, pretty-printed.
pub fn html(report: &Value, svg: &str) -> String {
    let name = report["scenario"].as_str().unwrap_or("load");
    let pretty = serde_json::to_string_pretty(report).unwrap_or_default();
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>{name}: load report</title>\
         <body style=\"font-family:sans-serif;max-width:960px;margin:2em auto\">\
         <h1>{name}</h1><p>{}</p>{svg}<h2>Report</h2><pre>{}</pre></body>\n",
        escape(report["about"].as_str().unwrap_or("")),
        escape(&pretty)
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::Answer;

    #[test]
    fn the_picture_has_both_charts_and_every_second() {
        let answers: Vec<Answer> = (0..300)
            .map(|n| Answer {
                due: Duration::from_millis(n * 10),
                latency: Duration::from_millis(if n % 100 == 0 { 250 } else { 5 }),
                status: 200,
                code: None,
                degraded: Vec::new(),
            })
            .collect();
        let summary = Summary::of(&answers, Duration::from_secs(3)).expect("summary");
        let picture = svg("healthy", &summary);
        assert_eq!(picture.matches("<polyline").count(), 3, "p50, p90, p99");
        assert!(picture.contains("latency histogram"));
        // 297 answers of 5 ms land in the (2, 5] ms bucket, 3 of 250 ms in (200, 500].
        assert!(picture.contains("≤ 5 ms: 297"), "{picture}");
        assert!(picture.contains("≤ 500 ms: 3"), "{picture}");
        assert_eq!(nice(87.0), 100.0);
        assert_eq!(nice(0.3), 0.5);
    }
}
