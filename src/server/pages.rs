//! The release and ticket pages: `GET /executions/{id}?t=…` and `GET /tickets/{id}?t=…`,
//! server-rendered HTML with SVG charts, opened from the links in chat messages. A page
//! without its signed token shows nothing (404), so pages cannot be enumerated. A running
//! release's page refreshes itself.

use super::local::{lang, text};
use super::AppState;
use crate::chat::links::Page;
use crate::chat::local::render::{self, esc, inline};
use crate::domain::plan::Plan;
use crate::domain::ticket::{DecisionKind, TicketId};
use crate::executor::{Point, Row};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    t: String,
    /// `main`: only the part that changes (the live refresh).
    #[serde(default)]
    part: Option<String>,
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!doctype html><title>404</title><p>Not found.</p>"),
    )
        .into_response()
}

fn document(state: &AppState, title: &str, main: &str, live: bool) -> String {
    let script = if live {
        format!("<script>{}</script>", LIVE_JS)
    } else {
        String::new()
    };
    format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"referrer\" content=\"no-referrer\"><link rel=\"icon\" href=\"data:,\"><title>{}</title><style>{}</style></head><body class=\"page\"><main id=\"main\" data-live=\"{live}\">{main}</main>{script}</body></html>",
        lang(state),
        esc(title),
        super::local::PAGE_CSS,
    )
}

/// Refreshes the page's changing part every second while the release runs.
const LIVE_JS: &str = r#""use strict";
(function () {
  async function tick() {
    const main = document.getElementById("main");
    if (main.dataset.live !== "true") return;
    const url = new URL(location.href);
    url.searchParams.set("part", "main");
    try {
      const r = await fetch(url, { credentials: "omit" });
      if (r.ok) {
        const html = await r.text();
        const doc = new DOMParser().parseFromString(html, "text/html");
        const next = doc.getElementById("main");
        if (next) { main.innerHTML = next.innerHTML; main.dataset.live = next.dataset.live; }
      }
    } catch (_) { /* the next tick tries again */ }
    setTimeout(tick, 1000);
  }
  setTimeout(tick, 1000);
})();"#;

fn respond(state: &AppState, q: &PageQuery, title: &str, main: String, live: bool) -> Response {
    if q.part.as_deref() == Some("main") {
        return Html(format!("<main id=\"main\" data-live=\"{live}\">{main}</main>")).into_response();
    }
    Html(document(state, title, &main, live)).into_response()
}

/// The id of a page whose token is valid.
fn checked(state: &AppState, id: &str, token: &str, page: fn(i64) -> Page) -> Option<i64> {
    let id = id.parse::<i64>().ok()?;
    state.bot.links.check(page(id), token).then_some(id)
}

/// `GET /executions/{id}?t=…`
pub async fn execution(State(state): State<AppState>, Path(id): Path<String>, Query(q): Query<PageQuery>) -> Response {
    let Some(id) = checked(&state, &id, &q.t, Page::Execution) else {
        return not_found();
    };
    match execution_main(&state, id).await {
        Ok(Some((title, main, live))) => respond(&state, &q, &title, main, live),
        Ok(None) => not_found(),
        Err(e) => super::internal(e),
    }
}

async fn execution_main(state: &AppState, id: i64) -> anyhow::Result<Option<(String, String, bool)>> {
    let bot = &state.bot;
    let now = bot.now();
    let Some(crate::executor::progress::Shown {
        row,
        plan,
        ticket,
        message: msg,
    }) = crate::executor::progress::shown(&bot.store, &bot.texts, &bot.config, id, now).await?
    else {
        return Ok(None);
    };
    let live = row.finished_at.is_none();
    let title = render::plain(&msg.title);
    let mut main = format!(
        "<h1>{}</h1><p><span class=\"badge {}\">{}</span> · <a href=\"{}\">{}</a></p>",
        inline(&msg.title),
        esc(&row.status),
        esc(&text(state, &format!("exec_status_{}", row.status))),
        esc(&bot.links.path(Page::Ticket(ticket.id.0))),
        esc(&text(state, "page_link_ticket")),
    );
    main.push_str(&fields(&msg));
    main.push_str(&charts(state, &row, now));
    main.push_str(&steps_table(state, &row, &plan));
    if let Some(c) = &msg.context {
        main.push_str(&format!("<p class=\"context\">{}</p>", inline(c)));
    }
    Ok(Some((title, main, live)))
}

/// A message's fields as the page shows them.
fn fields(msg: &crate::chat::Message) -> String {
    format!("<section><dl class=\"fields\">{}</dl></section>", render::fields(msg))
}

fn hhmmss(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default()
}

fn steps_table(state: &AppState, row: &Row, plan: &Plan) -> String {
    let run = &row.state;
    let mut out = format!(
        "<section><h2>{}</h2><table class=\"steps\"><thead><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        esc(&text(state, "page_steps")),
        esc(&text(state, "page_step")),
        esc(&text(state, "label_status")),
        esc(&text(state, "page_time")),
        esc(&text(state, "page_result")),
    );
    for (i, s) in plan.steps.iter().enumerate() {
        let info = &run.steps[i];
        let status = serde_json::to_value(run.exec.steps[i].status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let time = match (info.started_at, info.ended_at) {
            (Some(a), Some(b)) => format!("{} – {} ({} s)", hhmmss(a), hhmmss(b), ((b - a) / 1000).max(0)),
            (Some(a), None) => format!("{} –", hhmmss(a)),
            _ => String::new(),
        };
        let log = if info.log.is_empty() {
            String::new()
        } else {
            format!(
                "<details><summary>{}</summary><pre>{}</pre></details>",
                esc(&text(state, "page_log")),
                esc(&info.log.join("\n"))
            )
        };
        out.push_str(&format!(
            "<tr data-step=\"{}\"><td>{}</td><td>{}<br><small>{}</small></td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
            esc(&s.id),
            i + 1,
            esc(&s.name),
            esc(&serde_json::to_value(s.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()),
            esc(&status),
            esc(&time),
            info.result.as_deref().map(inline).unwrap_or_default(),
            log
        ));
    }
    if let Some(r) = &run.rollback_result {
        out.push_str(&format!(
            "<tr><td></td><td colspan=\"4\">{}</td></tr>",
            inline(
                &state
                    .bot
                    .texts
                    .render("exec_rollback_line", &serde_json::json!({ "result": r }))
                    .unwrap_or_default()
            )
        ));
    }
    out.push_str("</tbody></table></section>");
    out
}

/// One line of a chart: its CSS class, legend and points (time, value).
struct Series<'a> {
    class: &'a str,
    label: String,
    points: Vec<(i64, f64)>,
}

const W: f64 = 320.0;
const H: f64 = 150.0;
const PAD_L: f64 = 36.0;
const PAD_B: f64 = 18.0;

/// A line chart as SVG: `step` draws a staircase (a value holds until the next point).
fn svg(series: &[Series<'_>], t0: i64, t1: i64, y0: f64, y1: f64, unit: &str, step: bool) -> String {
    let span_t = (t1 - t0).max(1) as f64;
    let span_y = if y1 > y0 { y1 - y0 } else { 1.0 };
    let x = |t: i64| PAD_L + ((t - t0) as f64 / span_t) * (W - PAD_L - 4.0);
    let y = |v: f64| 4.0 + (1.0 - (v - y0) / span_y) * (H - PAD_B - 4.0);
    let mut out = format!(
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><g stroke=\"#ddd\" stroke-width=\"0.5\"><line x1=\"{PAD_L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/><line x1=\"{PAD_L}\" y1=\"4\" x2=\"{PAD_L}\" y2=\"{}\"/></g>",
        H - PAD_B,
        W - 4.0,
        H - PAD_B,
        H - PAD_B
    );
    out.push_str(&format!(
        "<g font-size=\"9\" fill=\"#888\"><text x=\"{}\" y=\"10\" text-anchor=\"end\">{}{unit}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}{unit}</text><text x=\"{PAD_L}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text></g>",
        PAD_L - 3.0,
        fmt_num(y1),
        PAD_L - 3.0,
        H - PAD_B,
        fmt_num(y0),
        H - 4.0,
        hhmmss(t0),
        W - 4.0,
        H - 4.0,
        hhmmss(t1)
    ));
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        let mut d = String::new();
        let mut last: Option<f64> = None;
        for (i, (t, v)) in s.points.iter().enumerate() {
            let (px, py) = (x(*t), y(*v));
            if i == 0 {
                d.push_str(&format!("M{px:.1},{py:.1}"));
            } else {
                if let (true, Some(prev)) = (step, last) {
                    d.push_str(&format!(" L{px:.1},{:.1}", y(prev)));
                }
                d.push_str(&format!(" L{px:.1},{py:.1}"));
            }
            last = Some(*v);
        }
        if let Some((_, v)) = s.points.last() {
            d.push_str(&format!(" L{:.1},{:.1}", x(t1), y(*v)));
        }
        let color = if s.class == "old" { "#888" } else { "#1264a3" };
        // The values the line passes through, in order, as its tooltip (and for readers
        // that do not see the line): every state is there, however briefly it lasted.
        let mut values: Vec<String> = Vec::new();
        for (_, v) in &s.points {
            let v = format!("{}{unit}", fmt_num(*v));
            if values.last() != Some(&v) {
                values.push(v);
            }
        }
        if values.len() > 24 {
            values.drain(12..values.len() - 12);
            values.insert(12, "…".into());
        }
        out.push_str(&format!(
            "<path class=\"{}\" d=\"{d}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.6\"><title>{}: {}</title></path>",
            s.class,
            esc(&s.label),
            esc(&values.join(" → "))
        ));
    }
    out.push_str("</svg>");
    out
}

fn fmt_num(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn figure(caption: &str, legend: &[&Series<'_>], svg: String) -> String {
    let legend: String = legend
        .iter()
        .map(|s| format!("<span class=\"{}\">━ {}</span>", s.class, esc(&s.label)))
        .collect();
    format!(
        "<figure><figcaption>{}</figcaption>{svg}<div class=\"legend\">{legend}</div></figure>",
        esc(caption)
    )
}

fn charts(state: &AppState, row: &Row, now: i64) -> String {
    let history: &[Point] = &row.state.history;
    let t0 = history
        .first()
        .map(|p| p.at)
        .unwrap_or(row.started_at)
        .min(row.started_at);
    let t1 = row.finished_at.unwrap_or(now).max(t0 + 1000);
    let new_label = text(state, "page_new");
    let old_label = text(state, "page_old");
    let traffic = Series {
        class: "new",
        label: new_label.clone(),
        points: history.iter().map(|p| (p.at, f64::from(p.traffic))).collect(),
    };
    let sampled: Vec<&Point> = history.iter().filter(|p| p.sample.is_some()).collect();
    let pick = |f: &dyn Fn(&crate::executor::Sample) -> f64| -> Vec<(i64, f64)> {
        sampled
            .iter()
            .filter_map(|p| p.sample.as_ref().map(|s| (p.at, f(s))))
            .collect()
    };
    let success = [
        Series {
            class: "new",
            label: new_label.clone(),
            points: pick(&|s| s.new_success),
        },
        Series {
            class: "old",
            label: old_label.clone(),
            points: pick(&|s| s.old_success),
        },
    ];
    let latency = [
        Series {
            class: "new",
            label: new_label,
            points: pick(&|s| s.new_p95 as f64),
        },
        Series {
            class: "old",
            label: old_label,
            points: pick(&|s| s.old_p95 as f64),
        },
    ];
    let values = |ss: &[Series<'_>]| {
        ss.iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .collect::<Vec<f64>>()
    };
    let sv = values(&success);
    let low = sv.iter().cloned().fold(100.0_f64, f64::min);
    let y0_success = if sv.is_empty() {
        95.0
    } else {
        (low - 1.0).floor().clamp(0.0, 99.0)
    };
    let lv = values(&latency);
    let high = lv.iter().cloned().fold(0.0_f64, f64::max);
    let y1_latency = if lv.is_empty() {
        100.0
    } else {
        (high * 1.25 / 50.0).ceil() * 50.0
    };
    let mut out = format!(
        "<section><h2>{}</h2><div class=\"charts\">",
        esc(&text(state, "page_charts"))
    );
    out.push_str(&figure(
        &text(state, "page_traffic"),
        &[&traffic],
        svg(std::slice::from_ref(&traffic), t0, t1, 0.0, 100.0, "%", true),
    ));
    if sampled.is_empty() {
        out.push_str(&format!(
            "<p class=\"context\">{}</p>",
            esc(&text(state, "page_no_samples"))
        ));
    } else {
        out.push_str(&figure(
            &text(state, "page_success"),
            &[&success[0], &success[1]],
            svg(&success, t0, t1, y0_success, 100.0, "%", false),
        ));
        out.push_str(&figure(
            &text(state, "page_latency"),
            &[&latency[0], &latency[1]],
            svg(&latency, t0, t1, 0.0, y1_latency, "ms", false),
        ));
    }
    out.push_str("</div></section>");
    out
}

/// `GET /tickets/{id}?t=…`
pub async fn ticket(State(state): State<AppState>, Path(id): Path<String>, Query(q): Query<PageQuery>) -> Response {
    let Some(id) = checked(&state, &id, &q.t, Page::Ticket) else {
        return not_found();
    };
    match ticket_main(&state, id).await {
        Ok(Some((title, main))) => respond(&state, &q, &title, main, false),
        Ok(None) => not_found(),
        Err(e) => super::internal(e),
    }
}

async fn ticket_main(state: &AppState, id: i64) -> anyhow::Result<Option<(String, String)>> {
    let bot = &state.bot;
    let mut conn = bot.store.read.acquire().await?;
    let Some(ticket) = crate::store::tickets::get(&mut conn, TicketId(id)).await? else {
        return Ok(None);
    };
    let Some((service, flow)) = bot.config.flow_of_service(&ticket.service) else {
        return Ok(None);
    };
    let audit = crate::store::audit::for_ticket(&mut conn, ticket.id).await?;
    let decisions = crate::store::tickets::decisions(&mut conn, ticket.id).await?;
    let execution = crate::store::executions::for_ticket::<serde_json::Value>(&mut conn, ticket.id).await?;
    drop(conn);
    let msg = crate::views::show(&bot.texts, &ticket, flow, &service.name, &audit)?;
    let mut main = format!("<h1>{}</h1>", inline(&msg.title));
    if let Some(c) = &msg.context {
        main.push_str(&format!("<p class=\"context\">{}</p>", inline(c)));
    }
    if let Some(e) = &execution {
        main.push_str(&format!(
            "<p><a href=\"{}\">{}</a> <span class=\"badge {}\">{}</span></p>",
            esc(&bot.links.path(Page::Execution(e.id))),
            esc(&text(state, "page_link_execution")),
            esc(&e.status),
            esc(&text(state, &format!("exec_status_{}", e.status)))
        ));
    }
    main.push_str(&fields(&msg));
    main.push_str(&format!(
        "<section><h2>{}</h2><table class=\"steps\"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        esc(&text(state, "page_stages")),
        esc(&text(state, "page_stage")),
        esc(&text(state, "page_role")),
        esc(&text(state, "page_decisions")),
    ));
    for (i, st) in flow.stages.iter().enumerate() {
        // The submission stage is decided by submitting.
        let submitted = (i == 0).then(|| {
            format!(
                "📝 {} · {}",
                esc(&render::person(&ticket.submitter.platform, &ticket.submitter.user_id)),
                esc(&crate::domain::fields::format_ms(ticket.created_at))
            )
        });
        let ds: Vec<String> = submitted
            .into_iter()
            .chain(decisions.iter().filter(|d| d.stage == i).map(|d| {
                let icon = if d.kind == DecisionKind::Approve {
                    "✅"
                } else {
                    "↩️"
                };
                let comment = d
                    .comment
                    .as_deref()
                    .map(|c| format!(" — {}", inline(c)))
                    .unwrap_or_default();
                format!(
                    "{icon} {} · {}{}",
                    esc(&render::person(&d.actor.platform, &d.actor.user_id)),
                    esc(&crate::domain::fields::format_ms(d.at)),
                    comment
                )
            }))
            .collect();
        main.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&st.name),
            esc(&st.role),
            ds.join("<br>")
        ));
    }
    main.push_str("</tbody></table></section>");
    if let Some(b) = &msg.body {
        main.push_str(&format!(
            "<section><h2>{}</h2><div class=\"body\">{}</div></section>",
            esc(&text(state, "page_audit")),
            inline(b)
        ));
    }
    Ok(Some((render::plain(&msg.title), main)))
}
