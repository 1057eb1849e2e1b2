# frozen_string_literal: true

begin
  require "shopify_events/shopify_events"
rescue LoadError => e
  raise LoadError, "shopify_events: the native extension is not built (#{e.message}). " \
                   "In a checkout run `rake compile`; an installed gem builds it at `gem install`."
end
