//! The playground: static files embedded from `ui/`; any other path without a file extension
//! gets `index.html` so the page's own routing can take over.

use rust_embed::RustEmbed;
use salvo::http::{HeaderValue, header};
use salvo::prelude::*;

#[derive(RustEmbed)]
#[folder = "ui/"]
struct Assets;

#[handler]
pub async fn serve(req: &mut Request, res: &mut Response) {
    let path = req.param::<String>("path").unwrap_or_default();
    if super::middleware::protected(&format!("/{path}")) {
        // An API path no route matched: the catcher answers with a JSON 404.
        res.status_code(StatusCode::NOT_FOUND);
        return;
    }
    let wanted = if path.is_empty() {
        "index.html"
    } else {
        path.as_str()
    };
    let has_extension = wanted
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'));
    let file = match Assets::get(wanted) {
        Some(f) => f,
        None if !has_extension => match Assets::get("index.html") {
            Some(f) => f,
            None => {
                return res
                    .status_code(StatusCode::NOT_FOUND)
                    .render("the playground is not built in");
            }
        },
        None => return res.status_code(StatusCode::NOT_FOUND).render("Not Found"),
    };
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        res.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res.body(file.data.into_owned());
}
