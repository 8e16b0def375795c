//! getdents records: `ino: u32, reclen: u16, type: u8, name, NUL`, padded to 4 bytes.

use klp_abi::dirent::{self, D_INO, D_NAME, D_RECLEN, D_TYPE, DT_DIR, DT_REG};
use klp_abi::errno::{EINVAL, ENOTDIR};

use super::{Ino, Node, inode};

/// Writes the records of directory `dir` from position `pos` on (0 is `.`, 1 is `..`, then
/// the entries in creation order), advancing `pos`; returns the bytes written.
///
/// # Errors
///
/// `ENOTDIR`; `EINVAL` when the next record does not fit into an empty buffer.
pub fn fill(dir: Ino, pos: &mut u64, buf: &mut [u8]) -> Result<usize, i32> {
    let dir_inode = inode(dir).ok_or(ENOTDIR)?;
    let parent = dir_inode.parent;
    let Node::Dir(entries) = &dir_inode.node else {
        return Err(ENOTDIR);
    };
    let mut len = 0;
    loop {
        let (ino, name, is_dir): (Ino, &[u8], bool) = match *pos {
            0 => (dir, b".", true),
            1 => (parent, b"..", true),
            n => match entries.get(n as usize - 2) {
                Some(e) => (e.ino, &e.name, e.is_dir),
                None => break,
            },
        };
        let d_type = if is_dir { DT_DIR } else { DT_REG };
        let reclen = dirent::reclen(name.len());
        let Some(rec) = buf.get_mut(len..len + reclen) else {
            return if len == 0 { Err(EINVAL) } else { Ok(len) };
        };
        rec.fill(0);
        rec[D_INO..D_INO + 4].copy_from_slice(&ino.to_le_bytes());
        rec[D_RECLEN..D_RECLEN + 2].copy_from_slice(&(reclen as u16).to_le_bytes());
        rec[D_TYPE] = d_type;
        rec[D_NAME..D_NAME + name.len()].copy_from_slice(name);
        len += reclen;
        *pos += 1;
    }
    Ok(len)
}
