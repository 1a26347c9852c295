//! Charts as server-rendered SVG: they read with JavaScript off, each bar or point carries a
//! tooltip (`<title>`, shown on hover), and each chart has a table view with the same numbers.

use leptos::prelude::*;

/// One series: a name, a CSS class for its colour, and a value per month.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: &'static str,
    pub class: &'static str,
    pub values: Vec<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bars stacked per month: positives above zero, negatives below.
    Stacked,
    /// Bars side by side per month.
    Grouped,
    /// A line per series.
    Line,
}

const H: f64 = 240.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// `2026-03` → `Mar 26`.
fn short_month(label: &str) -> String {
    const NAMES: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m) = label.split_once('-').unwrap_or(("", ""));
    let m: usize = m.parse().unwrap_or(1);
    format!("{} {}", NAMES[(m.max(1) - 1) % 12], y.get(2..).unwrap_or(""))
}

/// A round step for about four gridlines over `span`.
fn nice_step(span: f64) -> f64 {
    if span <= 0.0 {
        return 1.0;
    }
    let raw = span / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

#[component]
pub fn Chart(
    /// Used for the accessible name and the test hooks.
    title: &'static str,
    months: Vec<String>,
    series: Vec<Series>,
    kind: Kind,
    /// Formats a value for axis labels, tooltips and the table.
    format: fn(i64, &str) -> String,
    /// Passed to `format` (the currency code).
    #[prop(optional, into)]
    unit: String,
    /// The drawing's width in SVG units: smaller for charts in a grid, so text stays legible.
    #[prop(default = 720.0)]
    width: f64,
) -> AnyView {
    #[allow(non_snake_case)]
    let W = width;
    if months.is_empty() {
        return view! { <p class="muted">"No data for this period yet."</p> }.into_any();
    }
    let n = months.len();
    // The value range.
    let (mut lo, mut hi) = (0f64, 0f64);
    for i in 0..n {
        match kind {
            Kind::Stacked => {
                let pos: i64 = series
                    .iter()
                    .map(|s| s.values.get(i).copied().unwrap_or(0).max(0))
                    .sum();
                let neg: i64 = series
                    .iter()
                    .map(|s| s.values.get(i).copied().unwrap_or(0).min(0))
                    .sum();
                hi = hi.max(pos as f64);
                lo = lo.min(neg as f64);
            }
            _ => {
                for s in &series {
                    let v = s.values.get(i).copied().unwrap_or(0) as f64;
                    hi = hi.max(v);
                    lo = lo.min(v);
                }
            }
        }
    }
    let step = nice_step(hi - lo);
    let hi = (hi / step).ceil() * step;
    let lo = (lo / step).floor() * step;
    let span = (hi - lo).max(1.0);
    let plot_h = H - TOP - BOTTOM;
    let y = move |v: f64| TOP + (hi - v) / span * plot_h;
    let slot = (W - LEFT - 10.0) / n as f64;
    let x = move |i: usize| LEFT + slot * i as f64;

    let mut grid = Vec::new();
    let mut v = lo;
    while v <= hi + step / 2.0 {
        let label = format(v as i64, &unit);
        grid.push(view! {
            <g class="grid">
                <line x1=LEFT x2=W - 10.0 y1=y(v) y2=y(v)></line>
                <text x=LEFT - 6.0 y=y(v) + 4.0 text-anchor="end">{label}</text>
            </g>
        });
        v += step;
    }
    let every = n.div_ceil(12).max(1);
    let labels = months
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, m)| view! { <text class="x-label" x=x(i) + slot / 2.0 y=H - 6.0 text-anchor="middle">{short_month(m)}</text> })
        .collect_view();

    let marks = match kind {
        Kind::Stacked => (0..n)
            .map(|i| {
                let (mut up, mut down) = (0f64, 0f64);
                series
                    .iter()
                    .filter_map(|s| {
                        let v = s.values.get(i).copied().unwrap_or(0);
                        if v == 0 {
                            return None;
                        }
                        let (from, to) = if v > 0 {
                            let r = (up, up + v as f64);
                            up += v as f64;
                            r
                        } else {
                            let r = (down + v as f64, down);
                            down += v as f64;
                            r
                        };
                        let tip = format!("{} · {}: {}", short_month(&months[i]), s.name, format(v, &unit));
                        Some(view! {
                            <rect class=format!("bar {}", s.class) x=x(i) + slot * 0.15 width=slot * 0.7
                                y=y(to) height=(y(from) - y(to)).max(0.5)>
                                <title>{tip}</title>
                            </rect>
                        })
                    })
                    .collect_view()
            })
            .collect_view()
            .into_any(),
        Kind::Grouped => {
            let k = series.len().max(1) as f64;
            (0..n)
                .map(|i| {
                    series
                        .iter()
                        .enumerate()
                        .map(|(j, s)| {
                            let v = s.values.get(i).copied().unwrap_or(0) as f64;
                            let w = slot * 0.8 / k;
                            let tip = format!("{} · {}: {}", short_month(&months[i]), s.name, format(v as i64, &unit));
                            view! {
                                <rect class=format!("bar {}", s.class) x=x(i) + slot * 0.1 + w * j as f64 width=w
                                    y=y(v.max(0.0)) height=(y(v.min(0.0)) - y(v.max(0.0))).max(0.5)>
                                    <title>{tip}</title>
                                </rect>
                            }
                        })
                        .collect_view()
                })
                .collect_view()
                .into_any()
        }
        Kind::Line => series
            .iter()
            .map(|s| {
                let points: String = (0..n)
                    .map(|i| {
                        format!(
                            "{:.1},{:.1}",
                            x(i) + slot / 2.0,
                            y(s.values.get(i).copied().unwrap_or(0) as f64)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                let dots = (0..n)
                    .map(|i| {
                        let v = s.values.get(i).copied().unwrap_or(0);
                        let tip = format!("{} · {}: {}", short_month(&months[i]), s.name, format(v, &unit));
                        view! {
                            <circle class=format!("dot {}", s.class) cx=x(i) + slot / 2.0 cy=y(v as f64) r="3.5">
                                <title>{tip}</title>
                            </circle>
                        }
                    })
                    .collect_view();
                view! { <polyline class=format!("line {}", s.class) points=points></polyline> {dots} }
            })
            .collect_view()
            .into_any(),
    };
    let legend = series
        .iter()
        .map(|s| view! { <span class="legend-item"><span class=format!("swatch {}", s.class)></span>{s.name}</span> })
        .collect_view();
    let head = series
        .iter()
        .map(|s| view! { <th class="num">{s.name}</th> })
        .collect_view();
    let rows = (0..months.len())
        .map(|i| {
            let cells = series
                .iter()
                .map(|s| view! { <td class="num">{format(s.values.get(i).copied().unwrap_or(0), &unit)}</td> })
                .collect_view();
            view! { <tr><td>{months[i].clone()}</td>{cells}</tr> }
        })
        .collect_view();
    view! {
        <figure class="chart" data-chart=title>
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=title preserveAspectRatio="xMidYMid meet">
                {grid}
                <line class="zero" x1=LEFT x2=W - 10.0 y1=y(0.0) y2=y(0.0)></line>
                {marks}
                {labels}
            </svg>
            <figcaption class="legend">{legend}</figcaption>
            <details class="chart-table">
                <summary>"Show as a table"</summary>
                <div class="table-wrap">
                    <table class="table">
                        <thead><tr><th>"Month"</th>{head}</tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
            </details>
        </figure>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(1000.0), 500.0);
        assert_eq!(nice_step(800.0), 200.0);
        assert_eq!(nice_step(7_000_000.0), 2_000_000.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(short_month("2026-03"), "Mar 26");
    }
}
