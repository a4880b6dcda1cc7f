//! `roomgate-load charts`: the headline figures of docs/BENCHMARKS.md as SVG bar charts.
//!
//! The figures are kept in one JSON file beside the document (`docs/benchmarks/headline.json`):
//! each chart names what was measured, with which command, its bars (measured, or grey
//! reference figures from other runs or systems) and the goal, drawn as a dashed line. This
//! command redraws every chart from it, so a new measurement is one edit to the file and one
//! command, and the document and its pictures cannot drift apart.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;

/// One chart.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headline {
    /// The SVG's file name, without `.svg`.
    pub name: String,
    pub title: String,
    /// The x axis' unit, e.g. "visits per second".
    pub unit: String,
    /// How the figures were measured, written small under the chart.
    #[serde(default)]
    pub command: String,
    pub bars: Vec<Bar>,
    #[serde(default)]
    pub goal: Option<Goal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// Drawn grey: a figure from elsewhere (another system, an earlier commit, a limit).
    #[serde(default)]
    pub reference: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goal {
    pub label: String,
    pub value: f64,
}

/// Reads `figures` and writes one `<name>.svg` per chart into `out`; returns the files written.
pub fn draw_all(figures: &Path, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(figures)
        .with_context(|| format!("reading {}", figures.display()))?;
    let charts: Vec<Headline> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", figures.display()))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::with_capacity(charts.len());
    for chart in &charts {
        let path = out.join(format!("{}.svg", chart.name));
        draw(chart, &path).with_context(|| format!("drawing {}", chart.name))?;
        written.push(path);
    }
    Ok(written)
}

/// Horizontal bars on a linear scale from zero, each labelled with its value; the goal a dashed
/// red line across them.
pub fn draw(chart: &Headline, path: &Path) -> anyhow::Result<()> {
    if chart.bars.is_empty() {
        bail!("chart {} has no bars", chart.name);
    }
    if let Some(bad) = chart
        .bars
        .iter()
        .find(|bar| !bar.value.is_finite() || bar.value < 0.0)
    {
        bail!("bar {:?} of {} is not a figure", bad.label, chart.name);
    }
    let count = i32::try_from(chart.bars.len()).context("too many bars")?;
    let largest = chart
        .bars
        .iter()
        .map(|bar| bar.value)
        .chain(chart.goal.as_ref().map(|goal| goal.value))
        .fold(0.0_f64, f64::max);
    let right = if largest > 0.0 { largest * 1.25 } else { 1.0 };
    let height = u32::try_from(chart.bars.len())
        .unwrap_or(50)
        .saturating_mul(40)
        .saturating_add(170);
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, footer) = root.split_vertically(height - 24);
    if !chart.command.is_empty() {
        footer.draw_text(
            &chart.command,
            &("monospace", 11).into_font().color(&BLACK.mix(0.6)),
            (20, 4),
        )?;
    }
    let mut area = ChartBuilder::on(&plot)
        .caption(&chart.title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(260)
        .build_cartesian_2d(0f64..right, (0..count - 1).into_segmented())?;
    // Row 0 at the bottom in plotters' coordinates; the first bar belongs at the top.
    let row = |i: usize| count - 1 - i32::try_from(i).unwrap_or(i32::MAX);
    let label = |value: &SegmentValue<i32>| -> String {
        match value {
            SegmentValue::CenterOf(r) => usize::try_from(count - 1 - *r)
                .ok()
                .and_then(|i| chart.bars.get(i))
                .map(|bar| bar.label.clone())
                .unwrap_or_default(),
            _ => String::new(),
        }
    };
    // The goal is named under the axis rather than in a legend box, which would cover bars.
    let x_desc = match &chart.goal {
        Some(goal) => format!("{}   (red line: goal {})", chart.unit, goal.label),
        None => chart.unit.clone(),
    };
    area.configure_mesh()
        .disable_y_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&|value| figure(*value))
        .y_labels(chart.bars.len())
        .y_label_formatter(&label)
        .y_label_style(("sans-serif", 13))
        .draw()?;
    let measured = RGBColor(52, 101, 164);
    let reference = RGBColor(170, 170, 170);
    area.draw_series(chart.bars.iter().enumerate().map(|(i, bar)| {
        let color = if bar.reference { reference } else { measured };
        let mut rectangle: Rectangle<(f64, SegmentValue<i32>)> = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(row(i))),
                (bar.value, SegmentValue::Exact(row(i) + 1)),
            ],
            color.filled(),
        );
        rectangle.set_margin(6, 6, 0, 0);
        rectangle
    }))?;
    area.draw_series(chart.bars.iter().enumerate().map(|(i, bar)| {
        Text::new(
            figure(bar.value),
            (bar.value + right * 0.01, SegmentValue::CenterOf(row(i))),
            ("sans-serif", 13)
                .into_font()
                .into_text_style(&plot)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        )
    }))?;
    if let Some(goal) = &chart.goal {
        let red = RGBColor(200, 40, 40);
        area.draw_series(std::iter::once(PathElement::new(
            vec![
                (goal.value, SegmentValue::Exact(0)),
                (goal.value, SegmentValue::Exact(count)),
            ],
            red.stroke_width(2),
        )))?;
    }
    root.present()?;
    Ok(())
}

/// A bar's figure as the document writes it: thousands separated, two significant decimals
/// below ten.
fn figure(value: f64) -> String {
    if value >= 100.0 {
        crate::report::thousands(value.round() as u64)
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chart_of_the_figures_file_is_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let figures = dir.path().join("figures.json");
        std::fs::write(
            &figures,
            r#"[{"name": "a", "title": "A", "unit": "per second", "command": "just measure-it",
                 "bars": [{"label": "now", "value": 1234.4},
                          {"label": "peer", "value": 2000, "reference": true}],
                 "goal": {"label": "≥ 1,500", "value": 1500}},
                {"name": "b", "title": "B", "unit": "KiB", "bars": [{"label": "x", "value": 0}]}]"#,
        )
        .unwrap();
        let written = draw_all(&figures, &dir.path().join("out")).unwrap();
        assert_eq!(written.len(), 2);
        let svg = std::fs::read_to_string(&written[0]).unwrap();
        for shown in ["1,234", "red line: goal ≥ 1,500", "peer", "just measure-it"] {
            assert!(svg.contains(shown), "{shown} missing from {svg}");
        }
    }

    #[test]
    fn a_figure_that_is_not_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let chart = Headline {
            name: "bad".into(),
            title: "Bad".into(),
            unit: "s".into(),
            command: String::new(),
            bars: vec![Bar {
                label: "negative".into(),
                value: -1.0,
                reference: false,
            }],
            goal: None,
        };
        let error = draw(&chart, &dir.path().join("bad.svg")).unwrap_err();
        assert!(error.to_string().contains("negative"), "{error}");
    }
}
