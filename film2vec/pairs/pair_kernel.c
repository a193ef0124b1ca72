/* film2vec's co-view kernel: rows of the sparse product LᵀR for the assets of one bucket, off the diagonal.
 *
 * L lists, per bucket row (asset a = row * asset_step + first_asset), the members m that hold a, with a weight
 * (1 when no weights are given); R lists each member's assets. Row a of LᵀR is Σ_m weight(m, a) · R[m]: for
 * each member of the row, its assets are added into a dense accumulator of the catalogue's width, which
 * stays in the CPU caches, and the assets first touched are remembered so that emitting and clearing the row
 * costs what the row holds. scipy's general product makes two passes (sizes, then values) and a sorted CSR
 * result; this makes one, in the order the assets were touched.
 *
 * Output is resumable: the call stops before a row that might not fit in the buffer (whose capacity must be at
 * least n_assets) and returns that row, so the caller streams a bucket of any size through fixed buffers. Built and loaded by film2vec/c_kernels.py;
 * called from film2vec/pairs/stage.py.
 */
#include <stdint.h>

int64_t film2vec_pair_rows(int64_t n_rows, const int64_t *row_ptr, const int32_t *row_members,
                           const double *row_weights, const int64_t *member_ptr, const int32_t *member_assets,
                           int64_t first_asset, int64_t asset_step, int64_t n_assets, int64_t start_row,
                           double *accumulator, int64_t *touched, int64_t capacity, int64_t *out_a, int64_t *out_b,
                           int64_t *out_count, double *out_weight, int64_t *written) {
    int64_t emitted = 0;
    int64_t row = start_row;
    for (; row < n_rows; row++) {
        int64_t bound = 0; /* the most this row can emit: its members' assets with repeats, at most the catalogue */
        for (int64_t k = row_ptr[row]; k < row_ptr[row + 1] && bound < n_assets; k++) {
            int64_t m = row_members[k];
            bound += member_ptr[m + 1] - member_ptr[m];
        }
        if (emitted + (bound < n_assets ? bound : n_assets) > capacity) break; /* capacity >= n_assets: no row is too big */
        int64_t n_touched = 0;
        for (int64_t k = row_ptr[row]; k < row_ptr[row + 1]; k++) {
            int64_t m = row_members[k];
            double weight = row_weights ? row_weights[k] : 1.0;
            for (int64_t j = member_ptr[m]; j < member_ptr[m + 1]; j++) {
                int64_t b = member_assets[j];
                if (accumulator[b] == 0.0) touched[n_touched++] = b; /* weights are positive: 0 means untouched */
                accumulator[b] += weight;
            }
        }
        int64_t a = row * asset_step + first_asset;
        for (int64_t t = 0; t < n_touched; t++) {
            int64_t b = touched[t];
            if (b != a) {
                out_a[emitted] = a;
                out_b[emitted] = b;
                if (out_count) out_count[emitted] = (int64_t)accumulator[b];
                else out_weight[emitted] = accumulator[b];
                emitted++;
            }
            accumulator[b] = 0.0;
        }
    }
    *written = emitted;
    return row;
}
