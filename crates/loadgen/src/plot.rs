//! `--plot FILE.svg`: a latency percentile distribution, the comparison as bars, or a soak's
//! timeline (memory and joins/s, faults shaded).
//!
//! Only plotters' SVG backend is compiled, with its built-in text estimate instead of a font
//! stack: the chart is for looking at, and the browser that shows it draws the text.

use std::path::Path;

use anyhow::bail;
use plotters::prelude::*;

use crate::report::Chart;

/// The highest percentile the x axis shows: 99.999 %, five nines.
const MAX_NINES: f64 = 5.0;

pub fn draw(chart: &Chart, path: &Path) -> anyhow::Result<()> {
    match chart {
        Chart::None => bail!("this run has no latency or comparison to plot"),
        Chart::Latency { title, series } => latency(path, title, series),
        Chart::Compare {
            title,
            bars,
            references,
        } => compare(path, title, bars, references),
        Chart::Timeline {
            title,
            samples,
            faults,
            warmup_s,
        } => timeline(path, title, samples, faults, *warmup_s),
    }
}

/// Percentile → "number of nines": 0 % → 0, 90 % → 1, 99 % → 2, 99.9 % → 3… so that the tail
/// gets as much room as the body.
pub fn nines(percentile: f64) -> f64 {
    let tail = (1.0 - percentile / 100.0).max(10f64.powf(-MAX_NINES));
    -tail.log10()
}

/// The inverse, as an axis label: 2.0 → "99%".
pub fn percent_label(nines: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-nines));
    let text = format!("{percent:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

fn latency(path: &Path, title: &str, series: &[(String, Vec<(f64, f64)>)]) -> anyhow::Result<()> {
    if series.iter().all(|(_, points)| points.is_empty()) {
        bail!("no latency was recorded, so there is nothing to plot");
    }
    let top_x = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(p, _)| nines(*p)))
        .fold(1.0_f64, f64::max)
        .ceil();
    let top_y = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, ms)| *ms))
        .fold(0.001_f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..top_x, 0f64..top_y)?;
    // Whole numbers of nines are the interesting ticks.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ticks = top_x as usize + 1;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(ticks)
        .x_label_formatter(&|x| percent_label(*x))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|(p, ms)| (nines(*p), *ms)),
                color.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn compare(
    path: &Path,
    title: &str,
    bars: &[(String, f64)],
    references: &[(String, f64)],
) -> anyhow::Result<()> {
    // Measured bars first, then the reference figures in grey; a log scale shows both a few
    // joins per second and thousands.
    let items: Vec<(&str, f64, bool)> = bars
        .iter()
        .map(|(name, value)| (name.as_str(), *value, false))
        .chain(
            references
                .iter()
                .map(|(name, value)| (name.as_str(), *value, true)),
        )
        .collect();
    if items.is_empty() {
        bail!("no configuration ran, so there is nothing to plot");
    }
    // Horizontal bars, first item at the top: the labels stay horizontal and readable.
    let count = i32::try_from(items.len()).unwrap_or(i32::MAX);
    let row = |i: usize| count - 1 - i32::try_from(i).unwrap_or(i32::MAX);
    let top = items.iter().map(|i| i.1).fold(10.0_f64, f64::max) * 3.0;
    let height = u32::try_from(items.len())
        .unwrap_or(100)
        .saturating_mul(34)
        .saturating_add(140);
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;
    // A segmented `0..n` has n + 1 segments; `0..n - 1` gives one per item.
    let last = (count - 1).max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(300)
        .build_cartesian_2d((1f64..top).log_scale(), (0..last).into_segmented())?;
    let label = |value: &SegmentValue<i32>| -> String {
        match value {
            SegmentValue::CenterOf(r) => usize::try_from(count - 1 - *r)
                .ok()
                .and_then(|i| items.get(i))
                .map(|item| item.0.to_owned())
                .unwrap_or_default(),
            _ => String::new(),
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("complete joins per second (log scale; grey: reference figures)")
        .y_labels(items.len())
        .y_label_formatter(&label)
        .y_label_style(("sans-serif", 14))
        .draw()?;
    let measured = RGBColor(52, 101, 164);
    let reference = RGBColor(160, 160, 160);
    chart.draw_series(
        items
            .iter()
            .enumerate()
            .map(|(i, (_, value, is_reference))| {
                let color = if *is_reference { reference } else { measured };
                let mut bar: Rectangle<(f64, SegmentValue<i32>)> = Rectangle::new(
                    [
                        (1.0, SegmentValue::Exact(row(i))),
                        (value.max(1.0), SegmentValue::Exact(row(i) + 1)),
                    ],
                    color.filled(),
                );
                bar.set_margin(5, 5, 0, 0);
                bar
            }),
    )?;
    chart.draw_series(items.iter().enumerate().map(|(i, (_, value, _))| {
        Text::new(
            crate::report::rate(*value),
            (value.max(1.0) * 1.08, SegmentValue::CenterOf(row(i))),
            ("sans-serif", 13).into_font(),
        )
    }))?;
    root.present()?;
    Ok(())
}

/// Memory on the left axis, joins/s on the right, over elapsed seconds; each fault a shaded
/// band, the end of the warm-up a dashed line.
fn timeline(
    path: &Path,
    title: &str,
    samples: &[(f64, f64, f64)],
    faults: &[(f64, f64)],
    warmup_s: f64,
) -> anyhow::Result<()> {
    if samples.is_empty() {
        bail!("no sample was taken, so there is nothing to plot");
    }
    let right_x = samples
        .iter()
        .map(|s| s.0)
        .chain(faults.iter().map(|f| f.1))
        .fold(1.0_f64, f64::max);
    // Headroom above both lines for the legend.
    let top_mib = samples.iter().map(|s| s.1).fold(1.0_f64, f64::max) * 1.35;
    let top_rate = samples.iter().map(|s| s.2).fold(1.0_f64, f64::max) * 1.35;
    let root = SVGBackend::new(path, (1200, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0f64..right_x, 0f64..top_mib)?
        .set_secondary_coord(0f64..right_x, 0f64..top_rate);
    chart
        .configure_mesh()
        .x_desc("elapsed (s)")
        .y_desc("server RSS (MiB)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("complete joins per second")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let shade = RGBColor(214, 39, 40).mix(0.18);
    chart
        .draw_series(
            faults
                .iter()
                .map(|(from, to)| Rectangle::new([(*from, 0.0), (*to, top_mib)], shade.filled())),
        )?
        .label("database cut")
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], shade.filled()));
    let grey = RGBColor(120, 120, 120);
    chart.draw_series(DashedLineSeries::new(
        [(warmup_s, 0.0), (warmup_s, top_mib)],
        6,
        4,
        grey.stroke_width(1),
    ))?;
    let memory = RGBColor(31, 119, 180);
    chart
        .draw_series(LineSeries::new(
            samples.iter().map(|(t, mib, _)| (*t, *mib)),
            memory.stroke_width(2),
        ))?
        .label("server RSS (MiB, left)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], memory.stroke_width(2)));
    let rate = RGBColor(44, 160, 44);
    chart
        .draw_secondary_series(LineSeries::new(
            samples.iter().map(|(t, _, joins)| (*t, *joins)),
            rate.stroke_width(1),
        ))?
        .label("joins/s (right)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], rate.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_spread_the_tail() {
        assert!((nines(0.0) - 0.0).abs() < 1e-9);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert!((nines(100.0) - MAX_NINES).abs() < 1e-9);
    }

    #[test]
    fn axis_labels_read_as_percentiles() {
        assert_eq!(percent_label(0.0), "0%");
        assert_eq!(percent_label(1.0), "90%");
        assert_eq!(percent_label(2.0), "99%");
        assert_eq!(percent_label(3.0), "99.9%");
        assert_eq!(percent_label(4.0), "99.99%");
    }

    #[test]
    fn a_latency_chart_is_an_svg_with_its_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.svg");
        let chart = Chart::Latency {
            title: "storm".into(),
            series: vec![
                (
                    "reserve".into(),
                    vec![(50.0, 1.0), (99.0, 3.0), (100.0, 9.0)],
                ),
                (
                    "confirm".into(),
                    vec![(50.0, 2.0), (99.0, 4.0), (100.0, 5.0)],
                ),
            ],
        };
        draw(&chart, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("reserve") && svg.contains("confirm"));
        assert!(svg.contains("99.9%"));
    }

    #[test]
    fn a_comparison_chart_shows_every_bar_and_reference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("compare.svg");
        let chart = Chart::Compare {
            title: "compare".into(),
            bars: vec![("conditional/memory hot".into(), 2500.0)],
            references: vec![("pessimistic lock (seed)".into(), 12.4)],
        };
        draw(&chart, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("conditional/memory hot"));
        assert!(svg.contains("pessimistic lock (seed)"));
        assert!(svg.contains("12.4") && svg.contains("2,500"));
    }

    #[test]
    fn a_timeline_shows_memory_joins_and_the_faults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soak.svg");
        let chart = Chart::Timeline {
            title: "soak".into(),
            samples: (1..=30)
                .map(|t| (f64::from(t), 20.0 + f64::from(t) / 10.0, 500.0))
                .collect(),
            faults: vec![(10.0, 13.0), (20.0, 23.0)],
            warmup_s: 5.0,
        };
        draw(&chart, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("database cut") && svg.contains("joins/s"));
        assert!(svg.contains("server RSS (MiB"));
        let empty = Chart::Timeline {
            title: "t".into(),
            samples: vec![],
            faults: vec![],
            warmup_s: 1.0,
        };
        assert!(draw(&empty, &path).is_err());
    }

    #[test]
    fn nothing_to_plot_is_an_error_not_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.svg");
        assert!(draw(&Chart::None, &path).is_err());
        let empty = Chart::Latency {
            title: "t".into(),
            series: vec![("x".into(), vec![])],
        };
        assert!(draw(&empty, &path).is_err());
    }
}
