package slack

import (
	"errors"
	"fmt"
	"strings"

	"github.com/falco-scorer/falco-scorer/sinks"
)

// Failure reasons (the reason label of the failure metrics); an HTTP
// status alone gives the reason of its sinks.HTTPClass.
const (
	reasonPayload = "payload"       // Slack rejected this message: permanent
	reasonAuth    = "auth"          // the webhook URL or bot token is refused
	reasonConfig  = "config"        // channel or webhook gone, archived, not joined
	reasonAPI     = "api_error"     // an unknown chat.postMessage error
	reasonServer  = "api_transient" // Slack says the error is on its side
)

// payloadErrors are the answers that depend on the message itself: sending
// the same message again cannot succeed, so they are permanent and the
// dispatcher dead-letters the alerts one at a time.
var payloadErrors = map[string]bool{
	"invalid_payload":                         true,
	"invalid_blocks":                          true,
	"invalid_blocks_format":                   true,
	"invalid_attachments":                     true,
	"msg_too_long":                            true,
	"msg_blocks_too_long":                     true,
	"no_text":                                 true,
	"too_many_attachments":                    true,
	"too_many_blocks":                         true,
	"markdown_text_conflict":                  true,
	"invalid_metadata_format":                 true,
	"invalid_metadata_schema":                 true,
	"metadata_too_large":                      true,
	"invalid_arguments":                       true,
	"invalid_arg_name":                        true,
	"invalid_array_arg":                       true,
	"invalid_charset":                         true,
	"invalid_form_data":                       true,
	"invalid_json":                            true,
	"json_not_object":                         true,
	"missing_text_or_fallback_or_attachments": true,
}

// blocked are the answers that hold for every message until someone fixes
// the Slack side or falco-scorer's configuration. They are transient: the
// dispatcher keeps the alerts and retries with its backoff until
// delivery.max_retry_time, so fixing the cause delivers them. Each has a
// reason and a hint for the operator.
var blocked = map[string]struct{ reason, hint string }{
	// Incoming webhooks.
	"no_service":                        {reasonAuth, "the webhook URL was revoked or is wrong"},
	"no_service_id":                     {reasonAuth, "the webhook URL is incomplete"},
	"invalid_token":                     {reasonAuth, "the webhook URL's token is invalid; create a new webhook"},
	"no_active_hooks":                   {reasonAuth, "the webhook is disabled; enable it or create a new one"},
	"no_team":                           {reasonConfig, "the Slack workspace of the webhook no longer exists"},
	"team_disabled":                     {reasonConfig, "the Slack workspace of the webhook is disabled"},
	"user_not_found":                    {reasonConfig, "the webhook's user no longer exists; create a new webhook"},
	"channel_is_archived":               {reasonConfig, "the channel is archived; unarchive it or point the webhook at another channel"},
	"action_prohibited":                 {reasonConfig, "a workspace restriction forbids this webhook to post here"},
	"posting_to_general_channel_denied": {reasonConfig, "only admins may post to this channel; choose another channel"},
	// Both, or chat.postMessage.
	"channel_not_found":         {reasonConfig, "the channel does not exist or the bot cannot see it; check sinks.slack.channel and invite the bot"},
	"is_archived":               {reasonConfig, "the channel is archived; unarchive it or set another sinks.slack.channel"},
	"not_in_channel":            {reasonConfig, "the bot is not in the channel; invite it (/invite @app)"},
	"restricted_action":         {reasonConfig, "a workspace restriction forbids the bot to post in the channel"},
	"ekm_access_denied":         {reasonConfig, "administrators suspended posting"},
	"team_access_not_granted":   {reasonConfig, "the app is not granted access to this workspace"},
	"as_user_not_supported":     {reasonConfig, "the app does not support posting as a user"},
	"messages_tab_disabled":     {reasonConfig, "the app's messages tab is disabled"},
	"method_deprecated":         {reasonConfig, "chat.postMessage is deprecated for this app; check sinks.slack.api_url"},
	"deprecated_endpoint":       {reasonConfig, "the endpoint is deprecated; check sinks.slack.api_url"},
	"invalid_auth":              {reasonAuth, "the bot token is invalid; check bot_token"},
	"not_authed":                {reasonAuth, "no bot token reached Slack; check bot_token"},
	"token_revoked":             {reasonAuth, "the bot token was revoked; reinstall the app and set the new bot_token"},
	"token_expired":             {reasonAuth, "the bot token expired; set a new bot_token"},
	"account_inactive":          {reasonAuth, "the bot token belongs to a deleted user or workspace"},
	"missing_scope":             {reasonAuth, "the bot token lacks the chat:write scope"},
	"not_allowed_token_type":    {reasonAuth, "chat.postMessage needs a bot token (xoxb-)"},
	"no_permission":             {reasonAuth, "the bot token may not post here"},
	"access_denied":             {reasonAuth, "Slack denied access to the channel"},
	"accesslimited":             {reasonAuth, "Slack limits this method from this network"},
	"org_login_required":        {reasonAuth, "the workspace is migrating to an Enterprise organisation; retry later"},
	"two_factor_setup_required": {reasonAuth, "the token's user must set up two-factor authentication"},
	"enterprise_is_restricted":  {reasonAuth, "the method cannot be called from this Enterprise"},
	"team_added_to_org":         {reasonAuth, "the workspace joined an Enterprise organisation; reinstall the app"},
}

// serverErrors are chat.postMessage answers that Slack itself calls
// transient.
var serverErrors = map[string]bool{
	"ratelimited":            true,
	"rate_limited":           true,
	"message_limit_exceeded": true,
	"internal_error":         true,
	"fatal_error":            true,
	"service_unavailable":    true,
	"request_timeout":        true,
}

// lookupBlocked finds code in blocked; the restricted_action_* family
// (read-only channel, thread-only channel, ...) shares one entry.
func lookupBlocked(code string) (reason, hint string, ok bool) {
	if strings.HasPrefix(code, "restricted_action") {
		code = "restricted_action"
	}
	b, ok := blocked[code]
	return b.reason, b.hint, ok
}

// httpError words a 4xx answer (429 is handled before); class, from
// sinks.ClassifyHTTP, decides whether it is permanent. body is Slack's
// short error string, already scrubbed of secrets; bot tells
// chat.postMessage from an incoming webhook. Only answers caused by the
// message are permanent (Slack's 400s are about the payload unless listed in
// blocked); auth, config and "gone" answers concern every message and stay
// retryable, so fixing the cause delivers the alerts.
func httpError(code int, class sinks.HTTPClass, body string, bot bool) *sinks.Failure {
	who, fix := "slack webhook", "the webhook URL was revoked or is wrong"
	if bot {
		who, fix = "slack API", "check sinks.slack.api_url"
	}
	what := strings.TrimSpace(fmt.Sprintf("%s answered %d %s", who, code, body))
	if !bot && body == "channel_not_found" { // a webhook carries its channel
		return sinks.Transient(reasonConfig, fmt.Errorf("%s: the webhook's channel was deleted; create a new webhook", what))
	}
	if reason, hint, ok := lookupBlocked(body); ok {
		return sinks.Transient(reason, fmt.Errorf("%s: %s", what, hint))
	}
	switch class {
	case sinks.HTTPPayload:
		what += ": Slack rejected this message"
	case sinks.HTTPAuth:
		what += ": check the credentials and any proxy in between"
	case sinks.HTTPConfig:
		what += ": " + fix
	}
	return class.Failure(errors.New(what))
}

// apiError classifies the error of a chat.postMessage answer with ok
// false. Unknown errors stay permanent: the method's documented errors
// outside blocked and serverErrors concern the message.
func apiError(code string) *sinks.Failure {
	what := "chat.postMessage: " + code
	if reason, hint, ok := lookupBlocked(code); ok {
		return sinks.Transient(reason, fmt.Errorf("%s: %s", what, hint))
	}
	if serverErrors[code] {
		return sinks.Transient(reasonServer, errors.New(what))
	}
	if payloadErrors[code] {
		return sinks.Rejected(reasonPayload, fmt.Errorf("%s: Slack rejected this message", what))
	}
	return sinks.Rejected(reasonAPI, errors.New(what))
}
