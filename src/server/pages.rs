//! The two faces, embedded in the binary (no front-end build step): the floor manager's
//! console (`GET /console`, ES modules under `/assets/`) and the streamer's overlay for an OBS
//! browser source (`GET /overlay?room=…`). Plain HTML/CSS/JS under `src/server/assets/`.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

const CONSOLE_HTML: &str = include_str!("assets/console.html");
const OVERLAY_HTML: &str = include_str!("assets/overlay.html");
const OVERLAY_JS: &str = include_str!("assets/overlay.js");

const JS: &str = "text/javascript; charset=utf-8";

/// What `/assets/{file}` serves: the console's stylesheet and its modules (each imports the
/// others by relative path), and the overlay's script.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        include_str!("assets/console.css"),
        "text/css; charset=utf-8",
    ),
    ("console.js", include_str!("assets/console.js"), JS),
    ("cards.js", include_str!("assets/cards.js"), JS),
    ("feed.js", include_str!("assets/feed.js"), JS),
    ("i18n.js", include_str!("assets/i18n.js"), JS),
    ("insights.js", include_str!("assets/insights.js"), JS),
    ("live.js", include_str!("assets/live.js"), JS),
    ("page.js", include_str!("assets/page.js"), JS),
    ("scripts.js", include_str!("assets/scripts.js"), JS),
    ("state.js", include_str!("assets/state.js"), JS),
    ("tickets.js", include_str!("assets/tickets.js"), JS),
    ("util.js", include_str!("assets/util.js"), JS),
    ("vocab.js", include_str!("assets/vocab.js"), JS),
    ("overlay.js", OVERLAY_JS, JS),
];

/// `GET /console`.
pub async fn console() -> Html<&'static str> {
    Html(CONSOLE_HTML)
}

/// The overlay page with its script and the vocabulary inline: OBS loads it with `?token=`
/// in the URL, which a separate request for either would not carry. The vocabulary is the
/// console's (`GET /api/console`), so the two name a topic alike.
static OVERLAY_PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    // `<` escaped, so no label can close the script element.
    let vocab = super::vocab::vocabulary().to_string().replace('<', "\\u003c");
    OVERLAY_HTML.replace(
        r#"<script src="/assets/overlay.js"></script>"#,
        &format!(
            "<script id=\"vocab\" type=\"application/json\">{vocab}</script>\n<script>\n{OVERLAY_JS}</script>"
        ),
    )
});

/// `GET /overlay?room=…&hide=SECONDS[&token=…]`.
pub async fn overlay() -> Html<&'static str> {
    Html(OVERLAY_PAGE.as_str())
}

/// `GET /assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some(&(_, body, mime)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
