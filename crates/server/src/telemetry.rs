//! Logging: `tracing` with an `EnvFilter` (`RUST_LOG` wins over `log.filter`), as text or JSON.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::Instrument as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, LogSettings};

/// Middleware: runs each HTTP request inside a `request` span with its method and path (never
/// the query string, which may carry a ticket), so that every log line of the request says
/// which one it was. `user` is filled in once the bearer token has been checked
/// ([`record_user`]).
pub async fn trace_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.path(),
        user = tracing::field::Empty,
    );
    next.call(req).instrument(span).await
}

/// Names the authenticated user on the current request's span.
pub fn record_user(user: &roomgate_domain::UserId) {
    tracing::Span::current().record("user", tracing::field::display(user));
}

/// Installs the global subscriber, writing to `sink`. Does nothing if one is installed already
/// (tests start many apps in one process).
pub fn init<W>(settings: &LogSettings, sink: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink);
    let _ = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use actix_web::middleware::from_fn;
    use actix_web::{App, HttpResponse, test, web};
    use roomgate_domain::UserId;

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[actix_web::test]
    async fn a_request_logs_inside_a_span_with_its_method_path_and_user() {
        let sink = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(sink.clone())
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let app = test::init_service(App::new().wrap(from_fn(trace_request)).route(
            "/rooms/{id}",
            web::post().to(|| async {
                record_user(&UserId::parse("alice").unwrap());
                tracing::info!("handled");
                HttpResponse::Ok().finish()
            }),
        ))
        .await;
        let request = test::TestRequest::post()
            .uri("/rooms/lobby?ticket=not-for-logs")
            .to_request();
        test::call_service(&app, request).await;
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("request{method=POST path=/rooms/lobby user=alice}: ")
                && text.contains("handled"),
            "{text}"
        );
        assert!(!text.contains("not-for-logs"), "{text}");
    }
}
