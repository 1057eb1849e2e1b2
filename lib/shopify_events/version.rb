# frozen_string_literal: true

module ShopifyEvents
  VERSION = "0.1.0"
end
