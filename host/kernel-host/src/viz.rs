//! `kernel-host graph`: a pipeline's structure, data flow, execution waves
//! and (with a run report) where the time went, as DOT, Mermaid, SVG or a
//! self-contained HTML page; and the charts of `compare --html` and
//! `tune --html`. Everything is rendered here, as text: no network, no
//! scripts, nothing to install.

use crate::{Error, KernelComponent, Plan, Sandbox};
use kernel_host_manifest::graph::Input;
use kernel_host_types::frame::Selection;
use std::fmt::Write as _;

/// What a run report says about one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    pub seconds: f64,
    pub fuel: u64,
    pub peak_memory: u64,
    /// The step that took the most time.
    pub slowest: bool,
}

/// One step.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: String,
    /// `name@version` as the kernel describes itself (the manifest's entry
    /// when the component cannot be read).
    pub kernel: String,
    pub kind: String,
    /// What it reads: the steps (or `source`) and the columns it selects.
    pub inputs: Vec<String>,
    pub columns: String,
    pub wave: usize,
    pub cost: Option<Cost>,
}

/// A pipeline as a graph.
#[derive(Clone, Debug)]
pub struct Graph {
    pub name: String,
    pub features: String,
    pub target: Option<String>,
    pub nodes: Vec<Node>,
    /// Step indices per wave: the steps of a wave run at once.
    pub waves: Vec<Vec<usize>>,
    /// Training rows, from a run report.
    pub rows: Option<u64>,
}

fn selection(s: &Selection) -> String {
    match s {
        Selection::All => "all columns".into(),
        Selection::Columns(c) => c.join(", "),
        Selection::Types(t) => format!(
            "{} columns",
            t.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("/")
        ),
    }
}

/// The graph of `plan`, with the costs of `report` (a `--report` JSON) when
/// given. Components are read to name their kernels.
pub async fn graph(
    sandbox: &Sandbox,
    plan: &Plan,
    report: Option<&serde_json::Value>,
) -> Result<Graph, Error> {
    let ids: Vec<String> = plan.steps.iter().map(|s| s.id.clone()).collect();
    let inputs: Vec<Vec<Input>> = plan.steps.iter().map(|s| s.inputs.clone()).collect();
    let waves = kernel_host_manifest::graph::waves(&ids, &inputs);
    let mut nodes = Vec::new();
    for spec in &plan.steps {
        let (kernel, kind) =
            match KernelComponent::load(sandbox, &spec.id, &spec.source, spec.sha256.as_deref())
                .await
            {
                Ok(c) => (
                    format!("{}@{}", c.info().name, c.info().version),
                    c.info().kind.to_string(),
                ),
                Err(_) => (spec.kernel.clone(), "?".into()),
            };
        let cost = report
            .and_then(|r| r["steps"].as_array())
            .and_then(|steps| steps.iter().find(|s| s["id"] == spec.id.as_str()))
            .map(|s| Cost {
                seconds: s["busy_seconds"].as_f64().unwrap_or(0.0),
                fuel: s["fuel"].as_u64().unwrap_or(0),
                peak_memory: s["peak_memory"].as_u64().unwrap_or(0),
                slowest: false,
            });
        nodes.push(Node {
            id: spec.id.clone(),
            kernel,
            kind,
            inputs: spec
                .inputs
                .iter()
                .map(|i| match i {
                    Input::Source => "source".to_string(),
                    Input::Step(s) => s.clone(),
                })
                .collect(),
            columns: selection(&spec.select),
            wave: 0,
            cost,
        });
    }
    for (w, wave) in waves.iter().enumerate() {
        for &i in wave {
            nodes[i].wave = w;
        }
    }
    if let Some(slowest) = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.cost.as_ref().map(|c| (i, c.seconds)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
        && let Some(cost) = &mut nodes[slowest].cost
    {
        cost.slowest = true;
    }
    Ok(Graph {
        name: plan.name.clone(),
        features: plan
            .data
            .features
            .as_ref()
            .map_or("every column but the target".into(), |f| f.join(", ")),
        target: plan.data.target.clone(),
        nodes,
        waves,
        rows: report.and_then(|r| r["train_rows"].as_u64()),
    })
}

fn cost_line(c: &Cost) -> String {
    format!(
        "{:.1} ms · {} fuel · {:.1} MiB{}",
        c.seconds * 1e3,
        c.fuel,
        c.peak_memory as f64 / 1048576.0,
        if c.slowest { " · slowest" } else { "" }
    )
}

/// Escapes text for XML and HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in crate::printable(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A DOT string literal; each line of `text` becomes a DOT line break.
fn quoted(text: &str) -> String {
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| {
            crate::printable(l)
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        })
        .collect();
    format!("\"{}\"", lines.join("\\n"))
}

impl Graph {
    fn wave_label(&self, w: usize) -> String {
        let n = self.waves[w].len();
        if n > 1 {
            format!("wave {} ({n} steps in parallel)", w + 1)
        } else {
            format!("wave {}", w + 1)
        }
    }

    fn source_label(&self) -> String {
        format!(
            "source: {}{}",
            self.features,
            self.rows.map_or(String::new(), |r| format!(" ({r} rows)"))
        )
    }

    fn sink(&self) -> Option<usize> {
        self.waves.last().and_then(|w| w.last()).copied()
    }

    /// Graphviz DOT.
    pub fn dot(&self) -> String {
        let mut out = format!(
            "digraph {} {{\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n",
            quoted(&self.name)
        );
        let _ = writeln!(
            out,
            "  source [shape=cylinder, label={}];",
            quoted(&self.source_label())
        );
        for (w, wave) in self.waves.iter().enumerate() {
            let _ = writeln!(
                out,
                "  subgraph cluster_wave{} {{\n    label={};\n    style=dashed;",
                w + 1,
                quoted(&self.wave_label(w))
            );
            for &i in wave {
                let n = &self.nodes[i];
                let mut label = format!("{}\n{} ({})", n.id, n.kernel, n.kind);
                if let Some(c) = &n.cost {
                    label.push('\n');
                    label.push_str(&cost_line(c));
                }
                let colour = if n.cost.as_ref().is_some_and(|c| c.slowest) {
                    ", color=red, penwidth=2"
                } else {
                    ""
                };
                let _ = writeln!(out, "    n{i} [label={}{colour}];", quoted(&label));
            }
            out.push_str("  }\n");
        }
        for (i, n) in self.nodes.iter().enumerate() {
            for input in &n.inputs {
                let from = match self.nodes.iter().position(|m| m.id == *input) {
                    Some(j) => format!("n{j}"),
                    None => "source".into(),
                };
                let _ = writeln!(out, "  {from} -> n{i} [label={}];", quoted(&n.columns));
            }
        }
        if let Some(last) = self.sink() {
            let what = self
                .target
                .as_ref()
                .map_or("output".to_string(), |t| format!("predictions of {t}"));
            let _ = writeln!(
                out,
                "  sink [shape=note, label={}];\n  n{last} -> sink;",
                quoted(&what)
            );
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart.
    pub fn mermaid(&self) -> String {
        let label = |s: &str| s.split('\n').map(escape).collect::<Vec<_>>().join("<br/>");
        let mut out = String::from("flowchart LR\n");
        let _ = writeln!(out, "  source[(\"{}\")]", label(&self.source_label()));
        for (w, wave) in self.waves.iter().enumerate() {
            let _ = writeln!(
                out,
                "  subgraph wave{}[\"{}\"]",
                w + 1,
                label(&self.wave_label(w))
            );
            for &i in wave {
                let n = &self.nodes[i];
                let mut text = format!("{}\n{} ({})", n.id, n.kernel, n.kind);
                if let Some(c) = &n.cost {
                    text.push('\n');
                    text.push_str(&cost_line(c));
                }
                let _ = writeln!(out, "    n{i}[\"{}\"]", label(&text));
            }
            out.push_str("  end\n");
        }
        for (i, n) in self.nodes.iter().enumerate() {
            for input in &n.inputs {
                let from = match self.nodes.iter().position(|m| m.id == *input) {
                    Some(j) => format!("n{j}"),
                    None => "source".into(),
                };
                let _ = writeln!(out, "  {from} -->|\"{}\"| n{i}", label(&n.columns));
            }
            if n.cost.as_ref().is_some_and(|c| c.slowest) {
                let _ = writeln!(out, "  style n{i} stroke:#d00,stroke-width:3px");
            }
        }
        out
    }

    /// An SVG drawing: one column per wave, left to right.
    pub fn svg(&self) -> String {
        const W: f64 = 230.0;
        const H: f64 = 78.0;
        const GAP_X: f64 = 70.0;
        const GAP_Y: f64 = 36.0;
        let tallest = self.waves.iter().map(Vec::len).max().unwrap_or(1).max(1) as f64;
        let width = (self.waves.len() + 1) as f64 * (W + GAP_X) + 40.0;
        let height = tallest * (H + GAP_Y) + 80.0;
        let position = |i: Option<usize>| -> (f64, f64) {
            match i {
                None => (20.0, 50.0 + (tallest - 1.0) * (H + GAP_Y) / 2.0),
                Some(i) => {
                    let n = &self.nodes[i];
                    let wave = &self.waves[n.wave];
                    let row = wave.iter().position(|&j| j == i).unwrap_or(0) as f64;
                    let offset = (tallest - wave.len() as f64) * (H + GAP_Y) / 2.0;
                    (
                        20.0 + (n.wave + 1) as f64 * (W + GAP_X),
                        50.0 + offset + row * (H + GAP_Y),
                    )
                }
            }
        };
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"{}\">\n",
            escape(&self.name)
        );
        out.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>\n");
        for (w, _) in self.waves.iter().enumerate() {
            let x = 20.0 + (w + 1) as f64 * (W + GAP_X);
            let _ = writeln!(
                out,
                "<text x=\"{:.0}\" y=\"24\" fill=\"#666\" class=\"wave\">{}</text>",
                x,
                escape(&self.wave_label(w))
            );
        }
        let (sx, sy) = position(None);
        let _ = writeln!(
            out,
            "<g class=\"source\"><rect x=\"{sx:.0}\" y=\"{sy:.0}\" width=\"{W}\" height=\"{H}\" rx=\"16\" fill=\"#eef4ff\" stroke=\"#36c\"/><text x=\"{:.0}\" y=\"{:.0}\" font-weight=\"bold\">source</text><text x=\"{:.0}\" y=\"{:.0}\">{}</text></g>",
            sx + 10.0,
            sy + 22.0,
            sx + 10.0,
            sy + 42.0,
            escape(&truncate(&self.source_label()[8..], 34))
        );
        for (i, n) in self.nodes.iter().enumerate() {
            for input in &n.inputs {
                let from = self.nodes.iter().position(|m| m.id == *input);
                let (fx, fy) = position(from);
                let (tx, ty) = position(Some(i));
                let _ = writeln!(
                    out,
                    "<path d=\"M {:.0} {:.0} C {:.0} {:.0}, {:.0} {:.0}, {:.0} {:.0}\" fill=\"none\" stroke=\"#555\" marker-end=\"url(#arrow)\"><title>{}</title></path>",
                    fx + W,
                    fy + H / 2.0,
                    fx + W + GAP_X / 2.0,
                    fy + H / 2.0,
                    tx - GAP_X / 2.0,
                    ty + H / 2.0,
                    tx,
                    ty + H / 2.0,
                    escape(&n.columns)
                );
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let (x, y) = position(Some(i));
            let slowest = n.cost.as_ref().is_some_and(|c| c.slowest);
            let _ = write!(
                out,
                "<g class=\"step\" id=\"step-{}\"><rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{W}\" height=\"{H}\" rx=\"6\" fill=\"{}\" stroke=\"{}\" stroke-width=\"{}\"/>",
                escape(&n.id),
                if slowest { "#fff0f0" } else { "#fafafa" },
                if slowest { "#d00" } else { "#333" },
                if slowest { 3 } else { 1 }
            );
            let lines = [
                (
                    format!("{}{}", n.id, if slowest { " (slowest)" } else { "" }),
                    true,
                ),
                (format!("{} · {}", n.kernel, n.kind), false),
                (
                    n.cost.as_ref().map_or_else(|| n.columns.clone(), cost_line),
                    false,
                ),
            ];
            for (k, (text, bold)) in lines.iter().enumerate() {
                let _ = write!(
                    out,
                    "<text x=\"{:.0}\" y=\"{:.0}\"{}>{}</text>",
                    x + 10.0,
                    y + 22.0 + k as f64 * 20.0,
                    if *bold { " font-weight=\"bold\"" } else { "" },
                    escape(&truncate(text, 36))
                );
            }
            out.push_str("</g>\n");
        }
        out.push_str("</svg>\n");
        out
    }

    /// A self-contained HTML page: the drawing and a table of the steps.
    pub fn html(&self) -> String {
        let mut body = format!("<h1>{}</h1>\n{}", escape(&self.name), self.svg());
        body.push_str("<table>\n<tr><th>wave</th><th>step</th><th>kernel</th><th>reads</th><th>columns</th><th>time</th><th>fuel</th><th>peak memory</th></tr>\n");
        for (w, wave) in self.waves.iter().enumerate() {
            for &i in wave {
                let n = &self.nodes[i];
                let (t, f, m) = n
                    .cost
                    .as_ref()
                    .map_or(("-".into(), "-".into(), "-".into()), |c| {
                        (
                            format!("{:.1} ms", c.seconds * 1e3),
                            c.fuel.to_string(),
                            format!("{:.1} MiB", c.peak_memory as f64 / 1048576.0),
                        )
                    });
                let _ = writeln!(
                    body,
                    "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{t}</td><td>{f}</td><td>{m}</td></tr>",
                    if n.cost.as_ref().is_some_and(|c| c.slowest) {
                        " class=\"slowest\""
                    } else {
                        ""
                    },
                    w + 1,
                    escape(&n.id),
                    escape(&format!("{} ({})", n.kernel, n.kind)),
                    escape(&n.inputs.join(", ")),
                    escape(&n.columns)
                );
            }
        }
        body.push_str("</table>\n");
        page(&format!("pipeline {}", self.name), &body)
    }
}

fn truncate(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_string()
    } else {
        text.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// A complete HTML document around `body`: inline style, no scripts, no
/// network.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\nbody {{ font-family: Helvetica, Arial, sans-serif; margin: 2em; color: #222; }}\ntable {{ border-collapse: collapse; margin-top: 1.5em; }}\nth, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}\ntr.slowest td, tr.best td {{ background: #fff0f0; font-weight: bold; }}\n</style>\n</head>\n<body>\n{body}\n<p style=\"color:#888\">made by kernel-host {}</p>\n</body>\n</html>\n",
        escape(title),
        env!("CARGO_PKG_VERSION")
    )
}

/// A horizontal bar chart of mean ± std per label (the best bar marked).
pub fn bar_chart(
    metric: &str,
    bars: &[(String, Option<(f64, f64)>)],
    best: Option<usize>,
) -> String {
    let width = 720.0;
    let row = 28.0;
    let height = 40.0 + row * bars.len() as f64;
    let max = bars
        .iter()
        .filter_map(|(_, v)| v.map(|(m, s)| m + s))
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"{}\">\n",
        escape(metric)
    );
    let _ = writeln!(
        out,
        "<text x=\"220\" y=\"18\" fill=\"#666\">{} (mean ± std)</text>",
        escape(metric)
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 30.0 + i as f64 * row;
        let _ = write!(
            out,
            "<text x=\"10\" y=\"{:.0}\">{}</text>",
            y + 14.0,
            escape(&truncate(label, 30))
        );
        match value {
            Some((m, s)) => {
                let w = (m / max * 440.0).max(0.0);
                let colour = if Some(i) == best { "#2a7" } else { "#69c" };
                let _ = writeln!(
                    out,
                    "<rect x=\"220\" y=\"{y:.0}\" width=\"{w:.1}\" height=\"18\" fill=\"{colour}\"><title>{m:.4} ± {s:.4}</title></rect><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.0}\" y2=\"{:.0}\" stroke=\"#222\"/><text x=\"{:.1}\" y=\"{:.0}\">{m:.4}</text>",
                    220.0 + ((m - s) / max * 440.0).max(0.0),
                    220.0 + ((m + s) / max * 440.0),
                    y + 9.0,
                    y + 9.0,
                    224.0 + w,
                    y + 14.0
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "<text x=\"220\" y=\"{:.0}\" fill=\"#d00\">failed</text>",
                    y + 14.0
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

/// Trials over time: each trial's score at the time it finished, and the
/// best so far as a step line.
pub fn trials_chart(metric: &str, points: &[(f64, f64)], higher_is_better: bool) -> String {
    let (width, height) = (720.0, 320.0);
    let (x0, y0, pw, ph) = (60.0, 20.0, 620.0, 250.0);
    let tmax = points.iter().map(|p| p.0).fold(0.0f64, f64::max).max(1e-9);
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, lo + 1.0)
    };
    let sx = |t: f64| x0 + t / tmax * pw;
    let sy = |v: f64| y0 + ph - (v - lo) / (hi - lo) * ph;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"trials\">\n<rect x=\"{x0}\" y=\"{y0}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#ccc\"/>\n"
    );
    let _ = writeln!(
        out,
        "<text x=\"{x0}\" y=\"{}\" fill=\"#666\">seconds → ; {} ↑ (dots: trials, line: best so far)</text>",
        y0 + ph + 30.0,
        escape(metric)
    );
    let _ = writeln!(
        out,
        "<text x=\"4\" y=\"{:.0}\">{hi:.4}</text><text x=\"4\" y=\"{:.0}\">{lo:.4}</text>",
        y0 + 10.0,
        y0 + ph
    );
    let mut best: Option<f64> = None;
    let mut line = String::new();
    for &(t, v) in points {
        let _ = writeln!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#69c\"><title>{v:.4} at {t:.1} s</title></circle>",
            sx(t),
            sy(v)
        );
        let improved = best.is_none_or(|b| if higher_is_better { v > b } else { v < b });
        if improved {
            if let Some(b) = best {
                let _ = write!(line, " L {:.1} {:.1}", sx(t), sy(b));
            }
            best = Some(v);
            let _ = write!(
                line,
                "{} {:.1} {:.1}",
                if line.is_empty() { "M" } else { " L" },
                sx(t),
                sy(v)
            );
        }
    }
    if let Some(b) = best {
        let _ = write!(line, " L {:.1} {:.1}", x0 + pw, sy(b));
        let _ = writeln!(
            out,
            "<path d=\"{line}\" fill=\"none\" stroke=\"#2a7\" stroke-width=\"2\"/>"
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(quoted("say \"hi\""), "\"say \\\"hi\\\"\"");
    }
}
