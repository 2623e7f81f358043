package clickhouse

import "context"

// ReapplyMigrations applies every migration again, as a process does whose run was
// interrupted before it recorded them.
func (c *Client) ReapplyMigrations(ctx context.Context) error {
	all, err := migrations()
	if err != nil {
		return err
	}
	for _, m := range all {
		if err := c.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}
