//! Property tests of the frame codec: every message round-trips, and random,
//! truncated or oversized input gives an error, never a panic.

use appforge_shared::codec::{self, CodecError, MAX_FRAME_LEN};
use appforge_shared::protocol::*;
use appforge_shared::{ErrorCode, WireError};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,40}", "\\PC{0,200}"]
}

fn credentials() -> impl Strategy<Value = Credentials> {
    (text(), text()).prop_map(|(email, password)| Credentials {
        email,
        password: Secret(password),
    })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Ping),
        Just(Request::Status),
        credentials().prop_map(Request::Signup),
        credentials().prop_map(Request::Login),
        Just(Request::Logout),
        Just(Request::Whoami),
        (
            text(),
            any::<bool>(),
            proptest::option::of(text()),
            proptest::option::of(text())
        )
            .prop_map(
                |(prompt, save, name, model)| Request::Generate(GenerateRequest {
                    prompt,
                    save,
                    name: name.clone(),
                    provider: name,
                    model,
                    checks: CheckOptions::default(),
                })
            ),
        (any::<i64>(), proptest::option::of(text())).prop_map(|(generation_id, name)| {
            Request::SaveGeneration(SaveGenerationRequest {
                generation_id,
                name,
            })
        }),
        (text(), text()).prop_map(|(project, prompt)| Request::Improve(ImproveRequest {
            project,
            prompt,
            provider: None,
            model: Some("m".into()),
            checks: CheckOptions {
                check: false,
                keep_broken: true,
                repair_rounds: Some(2),
            },
        })),
        (text(), proptest::option::of(text())).prop_map(|(project, prompt)| Request::Fix(
            FixRequest {
                project,
                prompt,
                provider: None,
                model: None,
                checks: CheckOptions::default(),
            }
        )),
        Just(Request::ListProjects),
        (
            text(),
            proptest::option::of(any::<i64>()),
            proptest::option::of(text())
        )
            .prop_map(
                |(project, version, file)| Request::ShowProject(ShowRequest {
                    project,
                    version,
                    file,
                })
            ),
        (text(), any::<i64>(), files()).prop_map(|(project, base_version, files)| {
            Request::EditProject(EditRequest {
                project,
                base_version,
                files,
                checks: CheckOptions::default(),
            })
        }),
        text().prop_map(|project| Request::DeleteProject(ProjectRef { project })),
        text().prop_map(|project| Request::History(ProjectRef { project })),
        (
            text(),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>())
        )
            .prop_map(|(project, from, to)| Request::Diff(DiffRequest {
                project,
                from,
                to
            })),
        (text(), any::<i64>()).prop_map(|(project, version)| Request::Rollback(RollbackRequest {
            project,
            version,
            checks: CheckOptions::default(),
        })),
        (text(), proptest::option::of(any::<u16>()))
            .prop_map(|(project, port)| Request::Run(RunRequest { project, port })),
        (proptest::option::of(text()), any::<bool>())
            .prop_map(|(project, all)| Request::Stop(StopRequest { project, all })),
        text().prop_map(|project| Request::Restart(ProjectRef { project })),
        Just(Request::Ps),
        Just(Request::Metrics),
        Just(Request::DashboardLink),
        (text(), any::<u32>(), any::<bool>()).prop_map(|(project, lines, follow)| {
            Request::Logs(LogsRequest {
                project,
                lines,
                follow,
            })
        }),
        (
            text(),
            any::<bool>(),
            proptest::collection::vec(
                prop_oneof![Just(ExportTarget::K8s), Just(ExportTarget::Compose)],
                0..3
            )
        )
            .prop_map(|(project, zip, targets)| Request::Export(ExportRequest {
                project,
                format: if zip {
                    ArchiveFormat::Zip
                } else {
                    ArchiveFormat::TarGz
                },
                targets,
            })),
        (
            text(),
            proptest::collection::vec((text(), text()), 0..3),
            any::<bool>()
        )
            .prop_map(|(project, pairs, secret)| Request::Env(EnvRequest {
                project,
                change: EnvChange::Set {
                    settings: pairs.into_iter().map(|(k, v)| (k, Secret(v))).collect(),
                    secret,
                },
            })),
        (text(), proptest::collection::vec(text(), 0..3)).prop_map(|(project, names)| {
            Request::Env(EnvRequest {
                project,
                change: EnvChange::Unset { names },
            })
        }),
        (
            proptest::option::of(text()),
            text(),
            files(),
            any::<bool>(),
            proptest::option::of(text())
        )
            .prop_map(|(name, folder, files, repair, model)| {
                Request::Import(ImportRequest {
                    name,
                    folder,
                    files,
                    checks: CheckOptions::default(),
                    repair,
                    provider: None,
                    model,
                })
            }),
    ]
}

fn files() -> impl Strategy<Value = Vec<FileContent>> {
    proptest::collection::vec(
        (text(), text()).prop_map(|(path, content)| FileContent { path, content }),
        0..4,
    )
}

fn summary() -> impl Strategy<Value = ProjectSummary> {
    (any::<i64>(), text(), proptest::option::of(any::<u16>())).prop_map(|(id, name, port)| {
        ProjectSummary {
            id,
            name: name.clone(),
            status: "stopped".into(),
            port,
            version: id / 2,
            created_at: name.clone(),
            last_modified: name,
            check_status: Some("failed".into()),
        }
    })
}

fn process() -> impl Strategy<Value = ProcessInfo> {
    (
        any::<i64>(),
        text(),
        proptest::option::of(any::<u32>()),
        any::<u32>(),
    )
        .prop_map(|(project_id, name, pid, restarts)| ProcessInfo {
            project_id,
            name: name.clone(),
            status: "running".into(),
            pid,
            port: Some(8100),
            url: Some(name.clone()),
            restarts,
            uptime_s: pid.map(u64::from),
            cpu_percent: Some(1.5),
            rss_bytes: Some(1 << 20),
            last_exit: Some(name.clone()),
            version: Some(3),
            newer_version: pid.map(i64::from),
            check_status: None,
            hint: Some(name.clone()),
            target: Some(name.clone()),
            host: name.clone(),
            missing_settings: vec![name],
        })
}

fn project_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        process().prop_map(Reply::Running),
        proptest::collection::vec(process(), 0..3).prop_map(Reply::Stopped),
        proptest::collection::vec(process(), 0..3).prop_map(Reply::Processes),
        Just(Reply::LogsEnd),
        text().prop_map(Reply::Metrics),
        (text(), any::<u64>()).prop_map(|(url, expires_in_s)| Reply::DashboardLink(
            DashboardLink { url, expires_in_s }
        )),
        proptest::collection::vec(summary(), 0..3).prop_map(Reply::Projects),
        (summary(), text(), files()).prop_map(|(summary, prompt, files)| {
            Reply::Project(ProjectDetail {
                version: summary.version,
                summary,
                prompt,
                files,
            })
        }),
        (any::<i64>(), text(), any::<bool>()).prop_map(|(id, name, saved)| {
            Reply::Saved(SavedVersion {
                project_id: id,
                name: name.clone(),
                version: id,
                saved,
                changed: vec![name.clone()],
                check_status: name,
                checks: vec![CheckStep {
                    step: "import".into(),
                    passed: saved,
                    millis: 12,
                }],
                restarted: !saved,
                docs_only: saved,
            })
        }),
        summary().prop_map(Reply::Deleted),
        proptest::collection::vec(
            (any::<i64>(), text(), any::<u64>()).prop_map(|(version, prompt, tokens_used)| {
                VersionInfo {
                    version,
                    kind: "edit".into(),
                    prompt: prompt.clone(),
                    tokens_used,
                    generation_id: Some(version),
                    files: tokens_used / 3,
                    created_at: prompt,
                    check_status: None,
                }
            }),
            0..3
        )
        .prop_map(Reply::History),
        (any::<i64>(), text()).prop_map(|(id, unified)| Reply::Diff(DiffInfo {
            project_id: id,
            from: id,
            to: id,
            changed: vec![unified.clone()],
            unified,
        })),
        (
            any::<i64>(),
            text(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(id, root, archive)| Reply::Export(ExportInfo {
                project_id: id,
                root: root.clone(),
                format: ArchiveFormat::Zip,
                files: vec![root],
                archive,
            })),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u32>(), text()).prop_map(|(protocol, client_version)| ClientFrame::Hello(Hello {
            protocol,
            client_version
        })),
        (proptest::option::of(text()), request()).prop_map(|(token, request)| {
            ClientFrame::Request(Envelope {
                token: token.map(SessionToken),
                request,
            })
        }),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::NotFound),
        Just(ErrorCode::Forbidden),
        Just(ErrorCode::Unauthenticated),
        Just(ErrorCode::InvalidInput),
        Just(ErrorCode::Conflict),
        Just(ErrorCode::ProviderError),
        Just(ErrorCode::Internal),
        Just(ErrorCode::AppFailed),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let welcome = || {
        (any::<u32>(), text()).prop_map(|(protocol, daemon_version)| Welcome {
            protocol,
            daemon_version,
        })
    };
    prop_oneof![
        welcome().prop_map(ServerFrame::Welcome),
        text().prop_map(|s| ServerFrame::Progress(Progress::Step(s))),
        welcome().prop_map(|w| ServerFrame::Reply(Reply::Pong(w))),
        (text(), any::<u32>(), any::<u64>(), text(), any::<u64>()).prop_map(
            |(version, pid, uptime_s, socket, users)| ServerFrame::Reply(Reply::Status(
                StatusInfo {
                    version: version.clone(),
                    pid,
                    uptime_s,
                    socket: socket.clone(),
                    data_dir: socket.clone(),
                    database: socket,
                    users,
                    projects: users / 2,
                    connections: 1,
                    protections: vec![Protection {
                        name: version.clone(),
                        on: users % 2 == 0,
                    }],
                    web_url: (users % 3 == 0).then(|| version.clone()),
                    host: (users % 5 == 0).then(|| HostClaim {
                        name: version.clone(),
                        held: users % 2 == 1,
                        detail: version.clone(),
                    }),
                    web_off: (users % 3 == 1).then(|| version.clone()),
                }
            ))
        ),
        (text(), any::<i64>(), text()).prop_map(|(token, user_id, email)| ServerFrame::Reply(
            Reply::Session(SessionInfo {
                token: SessionToken(token),
                user_id,
                email: email.clone(),
                expires_at: email,
            })
        )),
        Just(ServerFrame::Reply(Reply::LoggedOut)),
        text().prop_map(|s| ServerFrame::Progress(Progress::Text(s))),
        text().prop_map(|s| ServerFrame::Progress(Progress::Restart(s))),
        text().prop_map(|s| ServerFrame::Progress(Progress::Log(s))),
        proptest::collection::vec((text(), any::<bool>(), any::<bool>()), 0..4).prop_map(|lines| {
            ServerFrame::Progress(Progress::LogLines(
                lines
                    .into_iter()
                    .map(|(text, ours, ends)| LogLine {
                        source: if ours {
                            LogSource::Appforge
                        } else {
                            LogSource::App
                        },
                        text,
                        ends,
                    })
                    .collect(),
            ))
        }),
        (
            any::<i64>(),
            proptest::collection::vec((text(), text()), 0..4),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(|(id, files, tokens_used, saved)| ServerFrame::Reply(
                Reply::Generated(Generated {
                    generation_id: id,
                    project: saved.then(|| SavedAs {
                        project_id: id,
                        name: "n".into(),
                        version: 1
                    }),
                    files: files
                        .into_iter()
                        .map(|(path, content)| FileContent { path, content })
                        .collect(),
                    tokens_used,
                    provider: "p".into(),
                    model: "m".into(),
                    duration_ms: tokens_used / 2,
                    mends: vec!["moved index.html".into()],
                    checks: Vec::new(),
                    repair_rounds: 1,
                    check_status: "passed".into(),
                    restarted: saved,
                    deleted: vec!["notes.txt".into()],
                    unchanged: !saved,
                    understood: saved.then(|| "a list of todos".into()),
                    docs_only: saved,
                })
            )),
        (any::<i64>(), text()).prop_map(|(user_id, email)| ServerFrame::Reply(Reply::User(
            UserInfo {
                user_id,
                email: email.clone(),
                created_at: email
            }
        ))),
        (error_code(), text()).prop_map(|(c, m)| ServerFrame::Error(WireError::new(c, m))),
        project_reply().prop_map(ServerFrame::Reply),
    ]
}

fn read_all<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, CodecError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut reader = bytes;
        let mut out = Vec::new();
        while let Some(msg) = codec::read_frame(&mut reader).await? {
            out.push(msg);
        }
        Ok(out)
    })
}

/// A reader that hands out at most `chunk` bytes a read.
struct Trickle<'a> {
    bytes: &'a [u8],
    chunk: usize,
}

impl tokio::io::AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.bytes.len()).min(buf.remaining());
        let (now, rest) = self.bytes.split_at(n);
        buf.put_slice(now);
        self.bytes = rest;
        std::task::Poll::Ready(Ok(()))
    }
}

/// Every frame in `bytes` through a `FrameReader` fed `chunk` bytes a read.
fn read_all_buffered(
    bytes: &[u8],
    chunk: usize,
    limit: usize,
) -> Result<Vec<ClientFrame>, CodecError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut frames = codec::FrameReader::new(Trickle { bytes, chunk });
        let mut out = Vec::new();
        while let Some(msg) = frames.next(limit).await? {
            out.push(msg);
        }
        Ok(out)
    })
}

proptest! {
    #[test]
    fn buffered_frames_come_whole_however_the_bytes_arrive(
        msgs in proptest::collection::vec(client_frame(), 1..6),
        chunk in 1usize..300,
    ) {
        let bytes: Vec<u8> = msgs.iter().flat_map(|m| codec::encode(m).unwrap()).collect();
        prop_assert_eq!(read_all_buffered(&bytes, chunk, MAX_FRAME_LEN).unwrap(), msgs);
        // Cut off inside the last frame: an error, not a frame.
        let cut = &bytes[..bytes.len() - 1];
        prop_assert!(matches!(read_all_buffered(cut, chunk, MAX_FRAME_LEN), Err(CodecError::Truncated)));
    }

    #[test]
    fn buffered_frames_over_the_limit_are_refused_at_the_prefix(len in 9000u32..u32::MAX) {
        let bytes = len.to_le_bytes();
        let refused = read_all_buffered(&bytes, 4, 8192);
        prop_assert!(matches!(refused, Err(CodecError::TooLarge { limit: 8192, .. })), "{:?}", refused);
    }

    #[test]
    fn client_frames_round_trip(msg in client_frame()) {
        let bytes = codec::encode(&msg).unwrap();
        let (back, used) = codec::decode_frame::<ClientFrame>(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(read_all::<ClientFrame>(&bytes).unwrap(), vec![msg]);
    }

    #[test]
    fn server_frames_round_trip(msg in server_frame()) {
        let bytes = codec::encode(&msg).unwrap();
        let (back, _) = codec::decode_frame::<ServerFrame>(&bytes).unwrap().unwrap();
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::decode_frame::<ClientFrame>(&bytes);
        let _ = codec::decode_frame::<ServerFrame>(&bytes);
        let _ = read_all::<ClientFrame>(&bytes);
    }

    #[test]
    fn random_payload_with_valid_prefix_is_an_error_or_a_message(
        payload in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&payload);
        match codec::decode_frame::<ClientFrame>(&bytes) {
            Ok(Some((_, used))) => prop_assert_eq!(used, bytes.len()),
            Ok(None) => prop_assert!(false, "a complete frame must not ask for more bytes"),
            Err(e) => prop_assert!(matches!(e, CodecError::Malformed(_))),
        }
    }

    #[test]
    fn truncated_frames_ask_for_more_or_fail(msg in client_frame(), cut in any::<prop::sample::Index>()) {
        let bytes = codec::encode(&msg).unwrap();
        let cut = cut.index(bytes.len());
        prop_assert!(codec::decode_frame::<ClientFrame>(&bytes[..cut]).unwrap().is_none());
        if cut == 0 {
            prop_assert!(read_all::<ClientFrame>(&bytes[..cut]).unwrap().is_empty());
        } else {
            let err = read_all::<ClientFrame>(&bytes[..cut]).unwrap_err();
            prop_assert!(matches!(err, CodecError::Truncated), "{:?}", err);
        }
    }

    #[test]
    fn oversized_prefixes_are_refused(len in (MAX_FRAME_LEN as u32 + 1)..=u32::MAX) {
        let bytes = len.to_le_bytes();
        let err = codec::decode_frame::<ClientFrame>(&bytes).unwrap_err();
        let too_large = matches!(err, CodecError::TooLarge { .. });
        prop_assert!(too_large);
        let err = read_all::<ClientFrame>(&bytes).unwrap_err();
        let too_large = matches!(err, CodecError::TooLarge { .. });
        prop_assert!(too_large);
    }
}

#[test]
fn a_frame_at_the_limit_is_accepted_and_one_over_is_refused() {
    let at = (MAX_FRAME_LEN as u32).to_le_bytes();
    assert!(codec::payload_len(at).is_ok());
    let over = (MAX_FRAME_LEN as u32 + 1).to_le_bytes();
    assert!(matches!(
        codec::payload_len(over),
        Err(CodecError::TooLarge { .. })
    ));
}

#[test]
fn trailing_bytes_after_a_message_are_malformed() {
    let mut payload = codec::encode(&ClientFrame::Request(Envelope {
        token: None,
        request: Request::Ping,
    }))
    .unwrap()[4..]
        .to_vec();
    payload.push(0);
    assert!(matches!(
        codec::decode_payload::<ClientFrame>(&payload),
        Err(CodecError::Malformed(_))
    ));
}

#[test]
fn secrets_never_show_in_debug_output() {
    let frame = ClientFrame::Request(Envelope {
        token: Some(SessionToken("tok-123".into())),
        request: Request::Login(Credentials {
            email: "a@b.c".into(),
            password: Secret("hunter22".into()),
        }),
    });
    let shown = format!("{frame:?}");
    assert!(
        !shown.contains("tok-123") && !shown.contains("hunter22"),
        "{shown}"
    );
}
