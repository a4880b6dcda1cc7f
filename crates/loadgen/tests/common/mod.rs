//! What the tool's test binaries share.

/// The MariaDB server tests use (no database in the path): `ROOMGATE_TEST_MYSQL_URL`, or the
/// `roomgate` user on this machine that `bash .ci/ensure-services` creates.
pub fn mysql_server_url() -> String {
    let url = std::env::var("ROOMGATE_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://roomgate:roomgate@127.0.0.1:3306".to_owned());
    let mut url = url::Url::parse(&url).expect("ROOMGATE_TEST_MYSQL_URL is a URL");
    url.set_path("");
    url.to_string()
}
