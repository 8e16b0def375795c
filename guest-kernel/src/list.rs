//! Intrusive doubly linked circular lists, `include/linux/list.h`, on klp-abi's `ListHead`.
//!
//! One convention beyond Linux's: an all-null head is an empty list, and a head whose last
//! entry is removed goes back to all null, so an empty wait queue or completion holds no
//! pointer to itself and may be moved. An entry not on a list is all null too.

use core::ptr;

use klp_abi::ListHead;

/// Whether the list `head` is empty (`list_empty`).
///
/// # Safety
///
/// `head` must point at a live list head.
pub unsafe fn list_empty(head: *const ListHead) -> bool {
    // SAFETY: the caller's contract.
    let next = unsafe { (*head).next };
    next.is_null() || ptr::eq(next, head)
}

/// Whether `entry` is on a list (the counterpart of `list_empty` for an entry).
///
/// # Safety
///
/// `entry` must point at a live entry.
pub unsafe fn list_linked(entry: *const ListHead) -> bool {
    // SAFETY: the caller's contract.
    unsafe { !list_empty(entry) }
}

/// Links `new` between `prev` and `next`; an all-null `head` (the one of them that is the
/// list head) is initialised first.
///
/// # Safety
///
/// `new` must be unlinked; `prev` and `next` adjacent links of a live list.
unsafe fn list_insert(new: *mut ListHead, prev: *mut ListHead, next: *mut ListHead) {
    // SAFETY: the caller's contract.
    unsafe {
        (*next).prev = new;
        (*new).next = next;
        (*new).prev = prev;
        (*prev).next = new;
    }
}

/// Makes an all-null head a proper empty list.
///
/// # Safety
///
/// `head` must point at a live list head.
unsafe fn list_init_lazy(head: *mut ListHead) {
    // SAFETY: the caller's contract.
    unsafe {
        if (*head).next.is_null() {
            (*head).next = head;
            (*head).prev = head;
        }
    }
}

/// Adds `new` right after `head` (`list_add`): at the front of the list.
///
/// # Safety
///
/// `new` must be unlinked and `head` a live list head or entry.
pub unsafe fn list_add(new: *mut ListHead, head: *mut ListHead) {
    // SAFETY: the caller's contract.
    unsafe {
        list_init_lazy(head);
        list_insert(new, head, (*head).next);
    }
}

/// Adds `new` right before `head` (`list_add_tail`): at the end of the list.
///
/// # Safety
///
/// As [`list_add`].
pub unsafe fn list_add_tail(new: *mut ListHead, head: *mut ListHead) {
    // SAFETY: the caller's contract.
    unsafe {
        list_init_lazy(head);
        list_insert(new, (*head).prev, head);
    }
}

/// Unlinks `entry` if it is on a list and leaves it all null (`list_del_init`). A head left
/// empty goes back to all null.
///
/// # Safety
///
/// `entry` must point at a live entry whose neighbours are live.
pub unsafe fn list_del_init(entry: *mut ListHead) {
    // SAFETY: the caller's contract.
    unsafe {
        if list_linked(entry) {
            let (prev, next) = ((*entry).prev, (*entry).next);
            (*prev).next = next;
            (*next).prev = prev;
            if ptr::eq(prev, next) && ptr::eq((*prev).next, prev) {
                // Only the head is left.
                (*prev).next = ptr::null_mut();
                (*prev).prev = ptr::null_mut();
            }
        }
        (*entry).next = ptr::null_mut();
        (*entry).prev = ptr::null_mut();
    }
}

/// The first entry of the list, if any (`list_first_entry_or_null`, before `container_of`).
///
/// # Safety
///
/// `head` must point at a live list head.
pub unsafe fn list_first(head: *mut ListHead) -> Option<*mut ListHead> {
    // SAFETY: the caller's contract.
    unsafe { (!list_empty(head)).then(|| (*head).next) }
}

/// `container_of`: the structure of type `$ty` whose field `$field` is at `$ptr`.
macro_rules! container_of {
    ($ptr:expr, $ty:ty, $field:ident) => {
        ($ptr)
            .cast::<u8>()
            .wrapping_sub(core::mem::offset_of!($ty, $field))
            .cast::<$ty>()
    };
}
