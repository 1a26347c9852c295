//! Charts as server-rendered SVG that read at every width and without JavaScript.
//!
//! The drawing is not scaled as a whole (no `viewBox`): the plot is as wide as its card, with
//! horizontal positions in percent and heights in pixels, so labels keep their CSS size (11 px
//! and up) on a phone as on a wide screen; the y axis is a narrow drawing of its own beside it.
//! Month labels that would collide on a narrow chart are hidden by a container query. Every bar
//! or point is a link to the rows that add up to it (when there are such rows) and can be
//! focused with the keyboard; hovering or focusing it shows its month and value. Each chart
//! also has a table view with the same numbers.

use leptos::prelude::*;

/// One series: a name, a CSS class for its colour, a value per month and, per month, the link to
/// the rows that add up to the value (empty: no links).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Series {
    pub name: &'static str,
    pub class: &'static str,
    pub values: Vec<i64>,
    pub links: Vec<String>,
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

/// Height of the drawing in CSS pixels.
const H: f64 = 240.0;
/// Room below the plot for the month labels, and above it for a focused value.
const BOTTOM: f64 = 24.0;
const TOP: f64 = 22.0;
/// Width of the y axis's labels, in CSS pixels.
const AXIS: f64 = 76.0;

/// `2026-03` → `Mar 26`.
fn short_month(label: &str) -> String {
    const NAMES: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m) = label.split_once('-').unwrap_or(("", ""));
    let m: usize = m.parse().unwrap_or(1);
    format!("{} {}", NAMES[(m.max(1) - 1) % 12], y.get(2..).unwrap_or(""))
}

/// A round step (1, 2 or 5 × a power of ten, and at least 1) for about four gridlines over `span`.
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
    (nice * mag).max(1.0)
}

/// The axis: from `lo` to `hi` (both multiples of `step`), in steps that are a whole number of
/// `whole` (minor units per whole unit: 100 for dollars, 1 for yen or counts), so every label is
/// a whole amount.
fn axis(values_lo: f64, values_hi: f64, whole: i64) -> (f64, f64, f64) {
    let whole = whole.max(1) as f64;
    let step = nice_step((values_hi - values_lo) / whole) * whole;
    let hi = (values_hi / step).ceil() * step;
    let lo = (values_lo / step).floor() * step;
    (lo, if hi <= lo { lo + step } else { hi }, step)
}

/// Percent of the plot's width, as an SVG length.
fn pct(v: f64) -> String {
    format!("{v:.3}%")
}

#[component]
pub fn Chart(
    /// Used for the accessible name and the test hooks.
    title: &'static str,
    months: Vec<String>,
    series: Vec<Series>,
    kind: Kind,
    /// Formats a value for tooltips and the table.
    format: fn(i64, &str) -> String,
    /// Formats a gridline's value (a whole amount).
    axis_format: fn(i64, &str) -> String,
    /// Minor units in one whole unit of the values (100 for USD, 1 for JPY and counts, 100 for
    /// basis points shown as whole percents).
    #[prop(default = 1)]
    whole: i64,
    /// Passed to `format` (the currency code).
    #[prop(optional, into)]
    unit: String,
) -> AnyView {
    if months.is_empty() {
        return view! { <p class="muted">"No data for this period yet."</p> }.into_any();
    }
    let n = months.len();
    let value = |s: &Series, i: usize| s.values.get(i).copied().unwrap_or(0);
    // The value range.
    let (mut lo, mut hi) = (0f64, 0f64);
    for i in 0..n {
        match kind {
            Kind::Stacked => {
                let pos: i64 = series.iter().map(|s| value(s, i).max(0)).sum();
                let neg: i64 = series.iter().map(|s| value(s, i).min(0)).sum();
                hi = hi.max(pos as f64);
                lo = lo.min(neg as f64);
            }
            _ => {
                for s in &series {
                    hi = hi.max(value(s, i) as f64);
                    lo = lo.min(value(s, i) as f64);
                }
            }
        }
    }
    let (lo, hi, step) = axis(lo, hi, whole);
    let span = hi - lo;
    let plot_h = H - TOP - BOTTOM;
    let y = move |v: f64| TOP + (hi - v) / span * plot_h;
    let slot = 100.0 / n as f64;
    let x = move |i: usize| slot * i as f64;
    // Where a focused value's text goes: over its month, kept inside the plot at the edges.
    let tip_at = move |i: usize| {
        let center = x(i) + slot / 2.0;
        if i < n / 4 {
            (pct(x(i)), "start")
        } else if i >= n - n / 4 {
            (pct(x(i) + slot), "end")
        } else {
            (pct(center), "middle")
        }
    };

    let mut gridlines = Vec::new();
    let mut ticks = Vec::new();
    let mut v = lo;
    while v <= hi + step / 2.0 {
        gridlines.push(view! { <line class="grid" x1="0" x2="100%" y1=y(v) y2=y(v)></line> });
        ticks.push(view! { <text x=AXIS - 8.0 y=y(v) + 4.0 text-anchor="end">{axis_format(v as i64, &unit)}</text> });
        v += step;
    }
    // Month labels in three tiers: about three always, six on a medium chart, twelve on a wide
    // one (a container query hides `mid` and `minor` when they would collide).
    let (always, mid, minor) = (n.div_ceil(3).max(1), n.div_ceil(6).max(1), n.div_ceil(12).max(1));
    let labels = months
        .iter()
        .enumerate()
        .filter(|(i, _)| i % minor == 0)
        .map(|(i, m)| {
            let class = if i % always == 0 {
                "x-label"
            } else if i % mid == 0 {
                "x-label mid"
            } else {
                "x-label minor"
            };
            view! { <text class=class x=pct(x(i) + slot / 2.0) y=H - 6.0 text-anchor="middle">{short_month(m)}</text> }
        })
        .collect_view();

    // One focusable mark: a link to its rows when it has some.
    let mark = |i: usize, s: &Series, shape: AnyView| {
        let v = value(s, i);
        let tip = format!("{} · {}: {}", short_month(&months[i]), s.name, format(v, &unit));
        let (tx, anchor) = tip_at(i);
        let text = view! { <text class="tip" x=tx y="14" text-anchor=anchor>{tip.clone()}</text> };
        match s.links.get(i).filter(|l| !l.is_empty()) {
            Some(href) => view! { <a class="mark" href=href.clone() aria-label=tip>{shape}{text}</a> }.into_any(),
            None => view! { <g class="mark" tabindex="0" role="img" aria-label=tip>{shape}{text}</g> }.into_any(),
        }
    };
    let title_of = |i: usize, s: &Series| {
        format!(
            "{} · {}: {}",
            short_month(&months[i]),
            s.name,
            format(value(s, i), &unit)
        )
    };

    let marks = match kind {
        Kind::Stacked => (0..n)
            .map(|i| {
                let (mut up, mut down) = (0f64, 0f64);
                series
                    .iter()
                    .filter_map(|s| {
                        let v = value(s, i);
                        if v == 0 {
                            return None;
                        }
                        let (from, to) = if v > 0 {
                            up += v as f64;
                            (up - v as f64, up)
                        } else {
                            down += v as f64;
                            (down, down - v as f64)
                        };
                        let shape = view! {
                            <rect class=format!("bar {}", s.class) x=pct(x(i) + slot * 0.15) width=pct(slot * 0.7)
                                y=y(to) height=(y(from) - y(to)).max(1.0)>
                                <title>{title_of(i, s)}</title>
                            </rect>
                        }
                        .into_any();
                        Some(mark(i, s, shape))
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
                            let v = value(s, i) as f64;
                            let w = slot * 0.8 / k;
                            let shape = view! {
                                <rect class=format!("bar {}", s.class) x=pct(x(i) + slot * 0.1 + w * j as f64) width=pct(w)
                                    y=y(v.max(0.0)) height=(y(v.min(0.0)) - y(v.max(0.0))).max(1.0)>
                                    <title>{title_of(i, s)}</title>
                                </rect>
                            }
                            .into_any();
                            mark(i, s, shape)
                        })
                        .collect_view()
                })
                .collect_view()
                .into_any()
        }
        Kind::Line => series
            .iter()
            .map(|s| {
                let center = |i: usize| pct(x(i) + slot / 2.0);
                let segments = (1..n)
                    .map(|i| {
                        view! {
                            <line class=format!("line {}", s.class) x1=center(i - 1) y1=y(value(s, i - 1) as f64)
                                x2=center(i) y2=y(value(s, i) as f64)></line>
                        }
                    })
                    .collect_view();
                let dots = (0..n)
                    .map(|i| {
                        let shape = view! {
                            <circle class=format!("dot {}", s.class) cx=center(i) cy=y(value(s, i) as f64) r="4">
                                <title>{title_of(i, s)}</title>
                            </circle>
                        }
                        .into_any();
                        mark(i, s, shape)
                    })
                    .collect_view();
                view! { {segments} {dots} }
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
    let rows = (0..n)
        .map(|i| {
            let cells = series
                .iter()
                .map(|s| {
                    let text = format(value(s, i), &unit);
                    match s.links.get(i).filter(|l| !l.is_empty()) {
                        Some(href) => view! { <td class="num"><a href=href.clone()>{text}</a></td> }.into_any(),
                        None => view! { <td class="num">{text}</td> }.into_any(),
                    }
                })
                .collect_view();
            view! { <tr><td>{months[i].clone()}</td>{cells}</tr> }
        })
        .collect_view();
    view! {
        <figure class="chart" data-chart=title>
            <div class="chart-body">
                <svg class="chart-axis" width=AXIS height=H aria-hidden="true">{ticks}</svg>
                <svg class="chart-plot" width="100%" height=H role="group" aria-label=title>
                    {gridlines}
                    <line class="zero" x1="0" x2="100%" y1=y(0.0) y2=y(0.0)></line>
                    {marks}
                    {labels}
                </svg>
            </div>
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
        assert_eq!(nice_step(2.0), 1.0);
        assert_eq!(short_month("2026-03"), "Mar 26");
    }

    #[test]
    fn gridlines_fall_on_whole_units() {
        // $0.00 to $3.37 in cents: steps of a whole dollar, not of 50 or 100 cents that print
        // as $0.50.
        let (lo, hi, step) = axis(0.0, 337.0, 100);
        assert_eq!((lo, hi, step), (0.0, 400.0, 100.0));
        // Large amounts keep round steps.
        let (lo, hi, step) = axis(-120_000.0, 4_800_000.0, 100);
        assert_eq!(step, 2_000_000.0);
        assert_eq!((lo, hi), (-2_000_000.0, 6_000_000.0));
        // Yen and counts: whole units are the units.
        assert_eq!(axis(0.0, 7.0, 1), (0.0, 8.0, 2.0));
        // Nothing at all still draws one step.
        assert_eq!(axis(0.0, 0.0, 100), (0.0, 100.0, 100.0));
    }
}
