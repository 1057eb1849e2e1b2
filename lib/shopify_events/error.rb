# frozen_string_literal: true

module ShopifyEvents
  # Base class of every error this gem raises on its own account. Payloads
  # that cannot be encoded raise Ruby's own TypeError/ArgumentError instead.
  class Error < StandardError; end

  # A setting (keyword or SHOPIFY_EVENTS_* variable) has a value we cannot use.
  class ConfigurationError < Error; end

  # The topic breaks Kafka's naming rules (1-249 of [a-zA-Z0-9._-], not "." or "..").
  class InvalidTopic < Error; end

  # The encoded event can never be sent: larger than max_event_bytes (or,
  # with the spool off, than the host's SysV message limit, sysctl
  # kernel.msgmax, or the queue's capacity).
  class PayloadTooLarge < Error; end

  # An envelope's bytes are malformed (bad magic, version, length or checksum).
  class DecodeError < Error; end

  # The transport could not take the event. `emit` never raises these: it
  # drops, counts and logs. `emit!` raises them.
  class TransportError < Error; end

  # The SysV queue has no room left: the drain is behind or not running.
  class QueueFull < TransportError; end

  # The direct transport's in-process buffer is full: Kafka is slower than
  # the app or unreachable (raise `direct_buffer`, or check the brokers).
  class BufferFull < TransportError; end

  # The SysV queue cannot be used (too many queues on the host, removed, ...).
  class QueueError < TransportError; end

  # The process may not use the queue (its permissions, or a capacity above
  # kernel.msgmnb without CAP_SYS_RESOURCE).
  class PermissionDenied < QueueError; end

  # No queue exists under the key (only from lookups that do not create one).
  class QueueNotFound < QueueError; end

  # The spool could not take the event because it is full (spool_max_bytes
  # reached, or the filesystem nearly full): the drain frees it as Kafka
  # acknowledges. `emit!` raises it where the queue was full (sysv) or for
  # every event (spool).
  class SpoolFull < QueueFull; end

  # The spool cannot be written: its directory is missing or not writable,
  # or a file operation failed. The message names the directory and the fix.
  class SpoolError < QueueError; end
end
