//! `--plot`: throughput over time and the latency distribution, as one SVG file.
//!
//! Only plotters' SVG backend is used, so no system font or image library is needed: the SVG
//! names a font family and the viewer renders the text.

use std::path::Path;

use plotters::prelude::*;

use crate::BenchError;
use crate::stats::Report;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 900;
/// Points on the percentile curve.
const CURVE_POINTS: usize = 400;

/// Writes the plot of `report` to `path`.
pub fn write_svg(report: &Report, path: &Path) -> Result<(), BenchError> {
    draw(report, path).map_err(|err| BenchError::Plot(err.to_string()))
}

fn draw(report: &Report, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(HEIGHT / 2);
    let who = if report.rooms > 0 {
        format!(
            "{} rooms × {} members, {} senders per room",
            report.rooms,
            report.clients / report.rooms,
            report.senders / report.rooms
        )
    } else {
        format!("{} clients, {} senders", report.clients, report.senders)
    };
    let title = format!(
        "{} {}: {who} × {} × {} B",
        report.target, report.scenario, report.messages_per_sender, report.size
    );

    let end = report.timeline.last().map_or(1.0, |p| p.t_secs).max(0.1);
    let peak = report
        .timeline
        .iter()
        .map(|p| p.deliveries_per_sec)
        .fold(0.0, f64::max)
        .max(1.0);
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("{title}: deliveries per second (100 ms slices)"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..end, 0.0..peak * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("seconds since sending started")
        .y_desc("deliveries/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    chart.draw_series(LineSeries::new(
        report
            .timeline
            .iter()
            .map(|p| (p.t_secs, p.deliveries_per_sec)),
        &BLUE,
    ))?;

    // x is -log10(1 - q): 1 is the 90th percentile, 2 the 99th, 3 the 99.9th, so the tail gets
    // as much room as the body. The curve stops where the samples run out.
    let histogram = &report.histogram;
    let tail = (histogram.len().max(10) as f64).log10().min(6.0);
    let curve: Vec<(f64, f64)> = if histogram.is_empty() {
        Vec::new()
    } else {
        (0..=CURVE_POINTS)
            .map(|i| {
                let x = tail * i as f64 / CURVE_POINTS as f64;
                let q = 1.0 - 10f64.powf(-x);
                (x, histogram.value_at_quantile(q) as f64 / 1e6)
            })
            .collect()
    };
    let top_ms = curve.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001);
    let mut chart = ChartBuilder::on(&bottom)
        .caption(
            format!("{} latency by percentile", report.latency_of),
            ("sans-serif", 18),
        )
        .margin(12)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..tail, 0.0..top_ms * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("milliseconds")
        .x_labels(tail.ceil() as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()?;
    chart.draw_series(LineSeries::new(curve, &RED))?;
    root.present()?;
    Ok(())
}

fn percentile_label(x: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.ceil() as usize).saturating_sub(2);
    format!("{percent:.decimals$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis_labels() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(4.0), "99.99%");
    }
}
