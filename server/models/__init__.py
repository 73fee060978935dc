"""The server's tables, one per module, on one declarative :class:`Base`."""

from __future__ import annotations

from server.models.account import ACCOUNT_ROLES, Account
from server.models.base import Base, UTCDateTime, utcnow
from server.models.invite import INVITE_ROLES, Invite
from server.models.item import Item, ItemShare, ItemSide
from server.models.log_checkpoint import LogCheckpoint
from server.models.log_entry import LogEntry
from server.models.log_head import LogHead
from server.models.log_key import LogKey
from server.models.log_subtree import LogSubtree
from server.models.login_challenge import LoginChallenge
from server.models.peer import PEER_STATES, Peer, PeerNonce
from server.models.switch import (
    CHANGE_KINDS,
    CHANGE_STATES,
    DURESS_MODES,
    OUTBOX_CHANNELS,
    SWITCH_STATES,
    ChangeVote,
    CheckinNonce,
    CustodianShare,
    NoticeLink,
    OutboxMessage,
    PendingChange,
    Release,
    StagedReleaseItem,
    SubmittedShare,
    Switch,
)
from server.models.token import Token
from server.models.upload import UploadSession
from server.models.witness import LogCosignature, WitnessedLog

__all__ = [
    "ACCOUNT_ROLES",
    "CHANGE_KINDS",
    "CHANGE_STATES",
    "DURESS_MODES",
    "INVITE_ROLES",
    "OUTBOX_CHANNELS",
    "PEER_STATES",
    "SWITCH_STATES",
    "Account",
    "Base",
    "ChangeVote",
    "CheckinNonce",
    "CustodianShare",
    "Invite",
    "Item",
    "ItemShare",
    "ItemSide",
    "LogCheckpoint",
    "LogCosignature",
    "LogEntry",
    "LogHead",
    "LogKey",
    "LogSubtree",
    "LoginChallenge",
    "NoticeLink",
    "OutboxMessage",
    "Peer",
    "PeerNonce",
    "PendingChange",
    "Release",
    "StagedReleaseItem",
    "SubmittedShare",
    "Switch",
    "Token",
    "UTCDateTime",
    "UploadSession",
    "WitnessedLog",
    "utcnow",
]
