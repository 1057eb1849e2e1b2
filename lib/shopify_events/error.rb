# frozen_string_literal: true

module ShopifyEvents
  # Base class of every error this gem raises on its own account. Payloads
  # that cannot be encoded raise Ruby's own TypeError/ArgumentError instead.
  class Error < StandardError; end

  # A setting (keyword or SHOPIFY_EVENTS_* variable) has a value we cannot use.
  class ConfigurationError < Error; end

  # The topic breaks Kafka's naming rules (1-249 of [a-zA-Z0-9._-], not "." or "..").
  class InvalidTopic < Error; end

  # The encoded event is larger than the host's SysV message limit
  # (sysctl kernel.msgmax) or the queue's capacity: it can never be sent.
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
end
