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

/// `GET /overlay?room=…&hide=SECONDS`.
pub async fn overlay() -> Html<&'static str> {
    Html(OVERLAY_HTML)
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
        [(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}
