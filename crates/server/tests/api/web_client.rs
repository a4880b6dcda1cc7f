//! The web client end to end: the page served at `GET /`, driven in Debian's headless
//! Chromium through ChromeDriver, against a server spawned on a free port.
//!
//! Three people, each in a browser of their own (own process, own fresh profile): alice
//! creates a room with two seats and enters it, bob joins, they chat and each sees the
//! other's words, and carol is turned away with the page saying in plain words that the
//! room is full. She waits for a seat instead: the page shows her place and the estimate,
//! she gives the place up and takes it again, and when bob leaves she is in the room
//! without doing anything more. Everything is done the way a person does it: typing into
//! the fields and clicking the buttons; the assertions read what the page shows.
//!
//! With `ROOMGATE_WEB_SCREENSHOTS=<folder>` set, each browser's page is saved there at the
//! interesting moments, to look at.

use std::{
    net::TcpListener,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::helpers::spawn_app;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The flags every browser in this test runs with; `--user-data-dir` is added per browser.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--window-size=1200,900",
];

/// How long the page may take to show something after a click. Generous for a loaded
/// two-core machine; a passing run waits a fraction of it.
const UI_TIMEOUT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_in_the_browser_and_a_third_waits_for_a_seat() -> Result<()> {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: the web client test needs Debian's Chromium and ChromeDriver. \
             Run `.ci/ensure-chromium` (it installs the chromium and chromium-driver packages)."
        );
    }

    let app = spawn_app().await;
    let driver = ChromeDriver::start().await?;

    let mut browsers = Vec::new();
    let outcome = async {
        for name in ["alice", "bob", "carol"] {
            browsers.push(Browser::open(&driver, name).await?);
        }
        scenario(&app.address, &browsers).await
    }
    .await;

    // On failure, keep a picture of each page for whoever reads the log.
    if outcome.is_err() {
        for browser in &browsers {
            browser.save_screenshot().await;
        }
    }
    for browser in browsers {
        browser.close().await;
    }
    driver.stop().await;
    outcome
}

async fn scenario(address: &str, browsers: &[Browser]) -> Result<()> {
    let [alice, bob, carol] = browsers else {
        bail!("expected three browsers, got {}", browsers.len());
    };
    let room_id = "book-club";
    let room_title = "Book club <Thursday>";

    for person in [alice, bob, carol] {
        person.sign_in(address).await?;
    }

    // alice creates a two-seat room; creating it also enters it.
    alice.fill("room-id", room_id).await?;
    alice.fill("room-title", room_title).await?;
    alice.fill("room-capacity", "2").await?;
    alice.click_id("create-room").await?;
    alice.wait_for_state("joined").await?;
    alice
        .wait_for_text("#chat-title", room_title, "alice sees the room she created")
        .await?;

    // bob finds it in the list, with its occupancy, and joins.
    bob.click_id("refresh-rooms").await?;
    bob.wait_for_text(
        &format!("[data-testid='occupancy-{room_id}']"),
        "1 attending · 0 reserved · 2 seats",
        "bob sees the room's occupancy in the list",
    )
    .await?;
    bob.click_css(&format!("[data-testid='join-{room_id}']"))
        .await?;
    bob.wait_for_state("joined").await?;
    alice
        .wait_for_text(
            "[data-testid='presence']",
            "bob joined the room.",
            "alice is told that bob arrived",
        )
        .await?;
    alice
        .wait_for_text(
            "[data-testid='member'][data-user='bob']",
            "bob",
            "alice sees bob among the members",
        )
        .await?;

    // They talk; each sees the other's message, markup shown as the text it is.
    let from_alice = "Hello Bob, shall we start with <b>chapter 3</b> & the notes?";
    let from_bob = "Hi Alice! Yes, chapter 3 it is.";
    alice.say(from_alice).await?;
    bob.wait_for_text(
        "[data-testid='message'][data-user='alice'] [data-testid='message-body']",
        from_alice,
        "bob sees alice's message",
    )
    .await?;
    bob.say(from_bob).await?;
    alice
        .wait_for_text(
            "[data-testid='message'][data-user='bob'] [data-testid='message-body']",
            from_bob,
            "alice sees bob's message",
        )
        .await?;
    alice
        .wait_for_text(
            "[data-testid='message'][data-user='alice'] [data-testid='message-body']",
            from_alice,
            "alice sees her own message come back from the server",
        )
        .await?;
    let injected = bob
        .eval("return document.querySelectorAll('#messages b').length")
        .await?;
    assert_eq!(
        injected,
        json!(0),
        "a chat message's markup must be shown as text, never parsed into elements"
    );

    // carol sees the room as full and is refused in plain words when she tries anyway.
    carol.click_id("refresh-rooms").await?;
    carol
        .wait_for_text(
            &format!("[data-testid='occupancy-{room_id}']"),
            "2 attending · 0 reserved · 2 seats",
            "carol sees both seats taken",
        )
        .await?;
    carol
        .click_css(&format!("[data-testid='join-{room_id}']"))
        .await?;
    let refusal = carol
        .wait_for_text(
            "#notice[data-code='room_full'] #notice-text",
            "room is full",
            "carol is told the room is full",
        )
        .await?;
    assert!(
        !refusal.contains("room_full"),
        "the refusal must be a sentence, not the error code: {refusal:?}"
    );
    assert_eq!(
        carol.state().await?,
        "idle",
        "carol must not be inside the room"
    );

    // The two inside are undisturbed by the refusal.
    for person in [alice, bob] {
        assert_eq!(
            person.state().await?,
            "joined",
            "{} is still in the room",
            person.name
        );
        let members = person
            .eval(
                "return Array.from(document.querySelectorAll(\"[data-testid='member']\"))\
                 .map(e => e.dataset.user).sort()",
            )
            .await?;
        assert_eq!(
            members,
            json!(["alice", "bob"]),
            "{} sees exactly the two members",
            person.name
        );
    }
    carol.snapshot("1-room-full").await;

    // The refusal offers the line; carol takes a place and the page shows it, live.
    carol.click_id("wait-for-seat").await?;
    carol.wait_for_state("waiting").await?;
    carol
        .wait_for_text("#waiting-position", "#1", "carol sees she is first in line")
        .await?;
    // No one has left the room yet, so the server has no rate to estimate from.
    carol
        .wait_for_text(
            "#waiting-eta",
            "estimating",
            "carol is told the wait is being estimated",
        )
        .await?;
    carol
        .wait_for_text(
            "#waiting-text",
            "next in line",
            "carol is told the next seat is hers",
        )
        .await?;
    alice.click_id("refresh-rooms").await?;
    alice
        .wait_for_text(
            &format!("[data-testid='occupancy-{room_id}']"),
            "2 attending · 0 reserved · 2 seats · 1 waiting",
            "alice sees someone waiting for her room",
        )
        .await?;
    carol.snapshot("2-waiting").await;

    // Giving the place up takes carol out of the line at once.
    carol.click_id("leave-line").await?;
    carol.wait_for_state("idle").await?;
    carol
        .wait_for_text(
            "#notice-text",
            "gave up your place",
            "carol is told her place is given up",
        )
        .await?;
    wait_for_waiting(address, room_id, 0).await?;

    // She asks again: refused, offered the line, and in it.
    carol
        .click_css(&format!("[data-testid='join-{room_id}']"))
        .await?;
    carol
        .wait_for_text(
            "#notice[data-code='room_full'] #notice-text",
            "wait for a seat",
            "carol is offered the line again",
        )
        .await?;
    carol.click_id("wait-for-seat").await?;
    carol.wait_for_state("waiting").await?;
    carol
        .wait_for_text("#waiting-position", "#1", "carol is first in line again")
        .await?;
    wait_for_waiting(address, room_id, 1).await?;

    // bob leaves; his seat goes to carol over the socket she waits on, with no click of hers.
    bob.click_id("leave").await?;
    bob.wait_for_state("idle").await?;
    carol.wait_for_state("joined").await?;
    carol
        .wait_for_text(
            "#chat-title",
            room_title,
            "carol is in the room she waited for",
        )
        .await?;
    carol
        .wait_for_text(
            "[data-testid='presence']",
            "A seat came free",
            "carol is told her wait is over",
        )
        .await?;
    alice
        .wait_for_text(
            "[data-testid='presence']",
            "carol joined the room.",
            "alice is told that carol arrived",
        )
        .await?;
    for person in [alice, carol] {
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            let members = person
                .eval(
                    "return Array.from(document.querySelectorAll(\"[data-testid='member']\"))\
                     .map(e => e.dataset.user).sort()",
                )
                .await?;
            if members == json!(["alice", "carol"]) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{} sees members {members}, not alice and carol",
                    person.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The room holds two members and no one waits.
    wait_for_waiting(address, room_id, 0).await?;
    carol.say("Thanks for the seat!").await?;
    alice
        .wait_for_text(
            "[data-testid='message'][data-user='carol'] [data-testid='message-body']",
            "Thanks for the seat!",
            "alice sees carol's message",
        )
        .await?;
    carol.snapshot("3-seated").await;
    alice.snapshot("3-seated").await;
    Ok(())
}

/// Waits until the server's `GET /api/v1/rooms/{id}` shows `waiting` people in the room's line.
async fn wait_for_waiting(address: &str, room_id: &str, waiting: u64) -> Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + UI_TIMEOUT;
    loop {
        let room: Value = http
            .get(format!("{address}/api/v1/rooms/{room_id}"))
            .send()
            .await?
            .json()
            .await?;
        if room["waiting"] == json!(waiting) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the room never showed {waiting} waiting: {room}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// ChromeDriver on a free loopback port; it starts a Chromium per session.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> Result<Self> {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
            listener.local_addr()?.port()
        };
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {CHROMEDRIVER}"))?;
        let url = format!("http://127.0.0.1:{port}");

        // Ready once its status endpoint answers.
        let deadline = Instant::now() + Duration::from_secs(20);
        let http = reqwest::Client::new();
        loop {
            let ready = http.get(format!("{url}/status")).send().await;
            if ready.is_ok_and(|response| response.status().is_success()) {
                return Ok(Self { child, url });
            }
            if Instant::now() > deadline {
                bail!("{CHROMEDRIVER} did not answer on {url} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(mut self) {
        // Sessions are closed already; this only ends the driver process itself.
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// One person at one browser: a Chromium of its own with a fresh profile.
struct Browser {
    name: &'static str,
    client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(driver: &ChromeDriver, name: &'static str) -> Result<Self> {
        let profile = tempfile::Builder::new()
            .prefix("roomgate-chromium-")
            .tempdir()
            .context("creating a Chromium profile folder")?;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            bail!("capabilities must be a JSON object");
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .with_context(|| format!("opening a Chromium session for {name}"))?;
        Ok(Self {
            name,
            client,
            _profile: profile,
        })
    }

    async fn sign_in(&self, address: &str) -> Result<()> {
        self.client
            .goto(&format!("{address}/"))
            .await
            .with_context(|| format!("{} opens the page", self.name))?;
        self.fill("user-id", self.name).await?;
        self.click_id("get-token").await?;
        self.wait_for_state("idle").await?;
        self.wait_for_text("#whoami", self.name, "the page says who is signed in")
            .await?;
        Ok(())
    }

    async fn say(&self, body: &str) -> Result<()> {
        self.fill("message-input", body).await?;
        self.click_id("send").await
    }

    async fn fill(&self, id: &str, text: &str) -> Result<()> {
        let field = self
            .client
            .find(Locator::Id(id))
            .await
            .with_context(|| format!("{}: no #{id} on the page", self.name))?;
        field.clear().await?;
        field
            .send_keys(text)
            .await
            .with_context(|| format!("{} types into #{id}", self.name))?;
        Ok(())
    }

    async fn click_id(&self, id: &str) -> Result<()> {
        self.click_css(&format!("#{id}")).await
    }

    async fn click_css(&self, css: &str) -> Result<()> {
        let element = self
            .client
            .wait()
            .at_most(UI_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("{}: nothing to click at {css}", self.name))?;
        element
            .click()
            .await
            .with_context(|| format!("{} clicks {css}", self.name))?;
        Ok(())
    }

    async fn eval(&self, script: &str) -> Result<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// `body[data-state]`: signed-out, idle, holding, waiting, connecting or joined.
    async fn state(&self) -> Result<String> {
        let value = self.eval("return document.body.dataset.state").await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    async fn wait_for_state(&self, wanted: &str) -> Result<()> {
        let deadline = Instant::now() + UI_TIMEOUT;
        while Instant::now() < deadline {
            if self.state().await? == wanted {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "{} never reached the {wanted:?} state; {}",
            self.name,
            self.describe().await
        )
    }

    /// Waits until an element matching `css` contains `needle` and returns its text.
    async fn wait_for_text(&self, css: &str, needle: &str, what: &str) -> Result<String> {
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            let texts = self
                .client
                .execute(
                    "return Array.from(document.querySelectorAll(arguments[0]))\
                     .map(e => e.textContent)",
                    vec![json!(css)],
                )
                .await?;
            let found = texts
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .find(|text| text.contains(needle));
            if let Some(text) = found {
                return Ok(text.to_owned());
            }
            if Instant::now() > deadline {
                bail!(
                    "{what}: no {css} containing {needle:?} on {}'s page after {UI_TIMEOUT:?} \
                     (found {texts}); {}",
                    self.name,
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the page shows right now, for failure messages.
    async fn describe(&self) -> String {
        self.client
            .execute(
                "return `state=${document.body.dataset.state}, \
                 notice=${JSON.stringify(document.getElementById('notice-text').textContent)}, \
                 connection=${JSON.stringify(document.getElementById('connection').textContent)}`",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "the page could not be read".to_owned())
    }

    /// Saves the page as `<ROOMGATE_WEB_SCREENSHOTS>/<name>-<moment>.png` when that variable
    /// names a folder; otherwise does nothing.
    async fn snapshot(&self, moment: &str) {
        let Some(folder) = std::env::var_os("ROOMGATE_WEB_SCREENSHOTS") else {
            return;
        };
        if let Ok(png) = self.client.screenshot().await {
            let path = Path::new(&folder).join(format!("{}-{moment}.png", self.name));
            let _ = std::fs::write(path, png);
        }
    }

    async fn save_screenshot(&self) {
        let path = std::env::temp_dir().join(format!("roomgate-web-client-{}.png", self.name));
        let saved = match self.client.screenshot().await {
            Ok(png) => std::fs::write(&path, png).is_ok(),
            Err(_) => false,
        };
        if saved {
            eprintln!("{}'s page: {}", self.name, path.display());
        }
    }

    async fn close(self) {
        // Ends the WebDriver session, which quits this Chromium.
        let _ = self.client.close().await;
    }
}
