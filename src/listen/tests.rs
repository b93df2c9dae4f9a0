//! Socket binding, directory checks and the accept loop's limits.

use super::*;

fn dir_with_mode(mode: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

#[test]
fn a_world_writable_directory_without_the_sticky_bit_is_refused() {
    let dir = dir_with_mode(0o777);
    let me = rustix::process::geteuid().as_raw();
    let err = check_socket_dir(&dir.path().join("vb.sock"), me, None).unwrap_err();
    assert!(
        matches!(err, ListenError::WorldWritableDir { mode: 0o777, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod +t"), "{err}");
}

#[tokio::test]
async fn a_missing_socket_directory_is_created_private_inside_a_shared_volume() {
    // An emptyDir: every container may write it, and it has no sticky bit.
    let volume = dir_with_mode(0o777);
    for (socket_mode, dir_mode) in [(0o660, 0o750), (0o600, 0o700)] {
        let dir = volume.path().join(format!("sock-{socket_mode:o}"));
        let path = dir.join("vb.sock");
        let (_listener, socket) = bind_unix(&path, &SocketAccess::mode(socket_mode)).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o7777;
        assert_eq!(mode, dir_mode, "{socket_mode:o}");
        socket.remove();
    }
    // The volume itself is still refused as the socket's directory.
    assert!(bind_unix(&volume.path().join("vb.sock"), &SocketAccess::mode(0o660)).is_err());
}

#[test]
fn a_sticky_world_writable_directory_and_a_private_one_are_accepted() {
    let me = rustix::process::geteuid().as_raw();
    for mode in [0o1777, 0o700, 0o750, 0o770] {
        let dir = dir_with_mode(mode);
        check_socket_dir(&dir.path().join("vb.sock"), me, None)
            .unwrap_or_else(|err| panic!("{mode:o}: {err}"));
    }
}

#[test]
fn a_directory_of_another_user_is_refused() {
    let dir = dir_with_mode(0o700);
    let me = rustix::process::geteuid().as_raw();
    // As root, hand the directory to `nobody`; as anyone else, look at it as a
    // daemon of another (non-root) user would.
    let daemon = if me == 0 {
        std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
        0
    } else {
        me + 1
    };
    let err = check_socket_dir(&dir.path().join("vb.sock"), daemon, None).unwrap_err();
    assert!(matches!(err, ListenError::ForeignDir { .. }), "{err}");
}

#[tokio::test]
async fn the_socket_and_a_created_directory_go_to_the_configured_owner_and_group() {
    // The tests run as root (as CI does), which may give files away.
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "this test needs root"
    );
    let volume = dir_with_mode(0o755);
    let path = volume.path().join("run").join("vb.sock");
    let access = SocketAccess {
        mode: 0o660,
        owner: Some(65534),
        group: Some(65533),
    };
    let (_listener, socket) = bind_unix(&path, &access).unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (65534, 65533, 0o660)
    );
    let dir = std::fs::metadata(path.parent().unwrap()).unwrap();
    assert_eq!(
        (dir.uid(), dir.gid(), dir.mode() & 0o777),
        (65534, 65533, 0o750)
    );
    drop(_listener);
    socket.remove();
    // A restart finds the directory owned by the socket's owner, and accepts it.
    let (_listener, socket) = bind_unix(&path, &access).unwrap();
    socket.remove();
    // Without that owner configured, the same directory is another user's.
    let err = bind_unix(&path, &SocketAccess::mode(0o660)).unwrap_err();
    assert!(
        matches!(err, ListenError::ForeignDir { owner: 65534, .. }),
        "{err}"
    );
}

#[test]
fn a_refused_change_of_owner_names_the_settings_and_the_rule() {
    let err = ListenError::Chown {
        what: "socket `/run/vb/vb.sock`".into(),
        owner: Some(1000),
        group: None,
        source: io::Error::from(io::ErrorKind::PermissionDenied),
    };
    let text = err.to_string();
    assert!(
        text.contains("cannot give the socket `/run/vb/vb.sock` to uid 1000"),
        "{text}"
    );
    assert!(text.contains("server.unix_socket_owner"), "{text}");
    assert!(
        text.contains("only root may give a file to another owner"),
        "{text}"
    );
}
