//! The two faces, embedded in the binary (no front-end build step): the floor manager's
//! console (`GET /console`) and the streamer's overlay for an OBS browser source
//! (`GET /overlay?room=…`). Plain HTML/CSS/JS under `src/server/assets/`.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

const CONSOLE_HTML: &str = include_str!("assets/console.html");
const OVERLAY_HTML: &str = include_str!("assets/overlay.html");
const CONSOLE_JS: &str = include_str!("assets/console.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");
const OVERLAY_JS: &str = include_str!("assets/overlay.js");

/// `GET /console`.
pub async fn console() -> Html<&'static str> {
    Html(CONSOLE_HTML)
}

/// The overlay page with its script inline: OBS loads it with `?token=` in the URL, which a
/// separate `/assets/overlay.js` request would not carry.
static OVERLAY_PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    OVERLAY_HTML.replace(
        r#"<script src="/assets/overlay.js"></script>"#,
        &format!("<script>\n{OVERLAY_JS}</script>"),
    )
});

/// `GET /overlay?room=…&hide=SECONDS[&token=…]`.
pub async fn overlay() -> Html<&'static str> {
    Html(OVERLAY_PAGE.as_str())
}

/// `GET /assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, mime) = match file.as_str() {
        "console.js" => (CONSOLE_JS, "text/javascript; charset=utf-8"),
        "console.css" => (CONSOLE_CSS, "text/css; charset=utf-8"),
        "overlay.js" => (OVERLAY_JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
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
