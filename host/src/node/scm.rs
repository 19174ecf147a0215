//! Descriptors across a Unix socket (`SCM_RIGHTS`): how Node passes a
//! socket or a server with a message (`send(msg, handle)`).
#![expect(unsafe_code, reason = "sendmsg(2)/recvmsg(2) with control messages")]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The most descriptors one read accepts (Node sends one per message).
pub const MAX_FDS: usize = 8;

/// Sends `data` with `fds` attached to its first byte; returns how many
/// bytes were sent (the rest goes without descriptors).
pub fn send_with_fds(socket: &impl AsRawFd, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    assert!(
        fds.len() <= MAX_FDS,
        "at most {MAX_FDS} descriptors per message"
    );
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let payload = size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
    let mut control = vec![0u8; space.max(1)];
    // SAFETY: a zeroed msghdr is a valid "no name, no control" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: `control` is CMSG_SPACE(payload) bytes, so the first
        // header and its data (CMSG_LEN(payload)) fit in it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                payload as usize,
            );
        }
    }
    // SAFETY: `msg` points at `iov` and `control`, both alive for the call;
    // MSG_NOSIGNAL turns a closed peer into EPIPE instead of SIGPIPE.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Reads into `buf`; descriptors that came with the bytes are appended to
/// `fds` (close-on-exec). Returns the bytes read (0 at end-of-file).
pub fn recv_with_fds(
    socket: &impl AsRawFd,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let payload = (MAX_FDS * size_of::<RawFd>()) as u32;
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: a zeroed msghdr is a valid "no name, no control" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at `iov` (over `buf`) and `control`, both alive
    // for the call; the kernel writes at most their lengths.
    let read = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if read < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled `msg.msg_control` with `msg_controllen`
    // bytes of well-formed headers; CMSG_NXTHDR stays inside them, and
    // each SCM_RIGHTS payload holds descriptors now ours to own.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..len / size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        tracing::warn!(
            "a peer sent more descriptors than one message may carry; the rest were closed"
        );
    }
    Ok(read as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_descriptor_travels_with_its_bytes() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut inner_a, inner_b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(send_with_fds(&a, b"hi", &[inner_b.as_raw_fd()]).unwrap(), 2);
        drop(inner_b);
        let mut buf = [0u8; 16];
        let mut fds = Vec::new();
        assert_eq!(recv_with_fds(&b, &mut buf, &mut fds).unwrap(), 2);
        assert_eq!(&buf[..2], b"hi");
        assert_eq!(fds.len(), 1);
        let mut passed = std::os::unix::net::UnixStream::from(fds.pop().unwrap());
        passed.write_all(b"through").unwrap();
        let mut got = [0u8; 7];
        inner_a.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"through");
    }
}
