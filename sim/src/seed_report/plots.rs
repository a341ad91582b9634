//! The seed's plots as SVG files, drawn with `plotters` (SVG backend only:
//! it needs no system fonts, text is laid out by estimate and rendered by
//! the viewer). Every plot has simulated seconds on x, one line per series
//! (a gap where a bucket has no value) and each fault window shaded.

use super::series::Series;
use super::windows::FaultWindow;
use plotters::prelude::*;

/// Plot size in pixels.
pub const PLOT_SIZE: (u32, u32) = (900, 320);
/// Series colours, in series order.
pub const SERIES_COLOURS: &[RGBColor] =
    &[RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xff, 0x7f, 0x0e), RGBColor(0x2c, 0xa0, 0x2c), RGBColor(0x94, 0x67, 0xbd)];
/// Fault windows' shade (drawn at [`WINDOW_OPACITY`]).
pub const WINDOW_COLOUR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
pub const WINDOW_OPACITY: f64 = 0.12;

/// One plot: `title` over `series`, y axis described by `y_desc`, x from 0
/// to `end_ms`, `windows` shaded. A drawing error (none is expected: the
/// backend writes to a string) comes back as text.
pub fn svg(title: &str, y_desc: &str, series: &[Series], windows: &[FaultWindow], end_ms: u64) -> Result<String, String> {
    let mut out = String::new();
    draw(&mut out, title, y_desc, series, windows, end_ms).map_err(|e| format!("plot {title}: {e}"))?;
    Ok(out)
}

fn draw(
    out: &mut String,
    title: &str,
    y_desc: &str,
    series: &[Series],
    windows: &[FaultWindow],
    end_ms: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let x_end = (end_ms.max(1)) as f64 / 1000.0;
    let y_top = series.iter().flat_map(|s| s.points.iter().filter_map(|p| p.1)).fold(0.0f64, f64::max);
    let y_end = if y_top > 0.0 { y_top * 1.1 } else { 1.0 };
    let root = SVGBackend::with_string(out, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_end, 0f64..y_end)?;
    chart.configure_mesh().x_desc("simulated s").y_desc(y_desc).max_light_lines(0).draw()?;
    // Instant faults get a sliver so they still show.
    let sliver = x_end / 500.0;
    let shade = WINDOW_COLOUR.mix(WINDOW_OPACITY).filled();
    let rects: Vec<Rectangle<(f64, f64)>> = windows
        .iter()
        .map(|w| {
            let (a, b) = (w.start_ms as f64 / 1000.0, w.end_ms as f64 / 1000.0);
            Rectangle::new([(a, 0.0), (b.max(a + sliver), y_end)], shade)
        })
        .collect();
    if !rects.is_empty() {
        chart
            .draw_series(rects)?
            .label("fault window")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], WINDOW_COLOUR.mix(0.3).filled()));
    }
    for (i, s) in series.iter().enumerate() {
        let colour = SERIES_COLOURS[i % SERIES_COLOURS.len()];
        let style = colour.stroke_width(2);
        // One line per run of points without a gap.
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &(t, y) in &s.points {
            match y {
                Some(y) => runs.last_mut().expect("one run").push((t as f64 / 1000.0, y)),
                None if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(Vec::new()),
                None => {}
            }
        }
        // The legend entry, on an empty series (the series may be all dots).
        chart
            .draw_series(LineSeries::new(Vec::<(f64, f64)>::new(), style))?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        // A point between two gaps is a dot (a one-point line draws nothing).
        let dots: Vec<(f64, f64)> = runs.iter().filter(|r| r.len() == 1).map(|r| r[0]).collect();
        chart.draw_series(dots.into_iter().map(|p| Circle::new(p, 3, colour.filled())))?;
        for run in runs.into_iter().filter(|r| r.len() > 1) {
            chart.draw_series(LineSeries::new(run, style))?;
        }
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).position(SeriesLabelPosition::UpperRight).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What an SVG draws, by element and colour, without coordinates: the
    /// stable shape of a plot for snapshots.
    pub(crate) fn structure(svg: &str) -> String {
        let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        let mut texts = Vec::new();
        let mut lines = svg.lines().peekable();
        while let Some(line) = lines.next() {
            let t = line.trim_start();
            let Some(tag) = t.strip_prefix('<').and_then(|r| r.split([' ', '>', '/']).next()) else { continue };
            if tag.is_empty() {
                continue;
            }
            let attr = |name: &str| {
                t.split(&format!(" {name}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_string()
            };
            match tag {
                "text" => {
                    if let Some(body) = lines.peek() {
                        texts.push(body.trim().to_string());
                    }
                }
                "rect" => *counts.entry(format!("rect fill={} opacity={}", attr("fill"), attr("opacity"))).or_default() += 1,
                "polyline" | "path" | "line" => {
                    *counts.entry(format!("{tag} stroke={} width={}", attr("stroke"), attr("stroke-width"))).or_default() += 1
                }
                _ => *counts.entry(tag.to_string()).or_default() += 1,
            }
        }
        let mut s: String = counts.iter().map(|(k, n)| format!("{n} × {k}\n")).collect();
        s.push_str(&format!("texts: {}\n", texts.join(" | ")));
        s
    }

    #[test]
    fn a_plot_has_its_series_lines_a_gap_and_shaded_windows() {
        let series = vec![Series { name: "p50 ms", points: vec![(0, Some(5.0)), (1000, Some(7.0)), (2000, None), (3000, Some(6.0)), (4000, Some(9.0))] }];
        let w = |s, e| FaultWindow { kind: "crash".into(), target: None, nodes: vec![], start_ms: s, end_ms: e, actions: vec![] };
        let svg = svg("send latency", "ms", &series, &[w(1000, 2500), w(3000, 3000)], 5000).unwrap();
        let st = structure(&svg);
        // Two runs of the one series around its gap (and its legend line); two shaded windows.
        assert!(st.contains("3 × polyline stroke=#1F77B4 width=2"), "{st}");
        assert!(st.contains("2 × rect fill=#D62728 opacity=0.12"), "{st}");
        insta::assert_snapshot!(st);
    }
}
