//! A forward proxy that only tunnels (`CONNECT host:port`), as corporate HTTPS proxies
//! do, with its own name table: the daemon cannot resolve the names it is asked for, so
//! a call that succeeds went through here. It records every tunnel's target.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub(crate) struct ConnectProxy {
    address: SocketAddr,
    targets: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl ConnectProxy {
    /// `names`: `host:port` as the client asks for it, and where the proxy connects.
    pub(crate) async fn start(names: HashMap<String, SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let seen = targets.clone();
        let names = Arc::new(names);
        let server = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let seen = seen.clone();
                let names = names.clone();
                tokio::spawn(async move {
                    let _ = tunnel(client, &names, &seen).await;
                });
            }
        });
        Self {
            address,
            targets,
            server,
        }
    }

    /// For `HTTPS_PROXY`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every `CONNECT` target asked for so far, in order.
    pub(crate) fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

async fn tunnel(
    mut client: TcpStream,
    names: &HashMap<String, SocketAddr>,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    // The request head alone: a client sends nothing else before the 200.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if client.read(&mut byte).await? == 0 || head.len() > 8192 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    seen.lock().unwrap().push(target.to_owned());
    let Some(address) = names.get(target) else {
        client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let mut upstream = TcpStream::connect(address).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
